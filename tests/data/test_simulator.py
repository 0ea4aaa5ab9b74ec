"""Data expectations for the simulator: the contract holds, and the labels carry the structure we rely on.

The simulator is the only data most of Docket's tests and demos ever see, so
besides the schema these tests protect the properties that make it useful:
class imbalance, label delay, spikes and brigades, and labels that raw report
fields alone cannot separate.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.tree import DecisionTreeClassifier

from features import vocabulary as V
from features.contract import REFERENCES, TABLES
from simulator.simulate import SIMULATION_STEPS, simulate

N_REPORTS = 20_000
SEED = 11
DAYS = 365
START = pd.Timestamp("2025-01-01", tz="UTC")
END = START + pd.Timedelta(days=DAYS)

ORDER_FRAUD_RATE = (0.005, 0.03)
FRAUD_CONFIRMED_RATE = (0.03, 0.08)
VALIDITY_RATE = (0.4, 0.6)
EVIDENCE_WORDS = "screenshot|record|photo|Photo|Tracking|tracking|Receipt|Order o"
DTYPES = {"str": "str", "category": "str", "timestamp": "datetime64[us, UTC]", "float": "float64", "int": "int64",
          "bool": "bool"}


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return simulate(N_REPORTS, seed=SEED, days=DAYS, start="2025-01-01")


@pytest.fixture(scope="module")
def labelled(tables) -> pd.DataFrame:
    """Reports with truth and, where resolved, their outcome."""
    return (
        tables["reports"]
        .merge(tables["truth_reports"], on="report_id")
        .merge(tables["outcomes"], on="report_id", how="left")
    )


@pytest.fixture(scope="module")
def resolved(labelled) -> pd.DataFrame:
    out = labelled[labelled["resolved_at"].notna()].copy()
    out["valid"] = out["valid"].astype(bool)
    out["fraud_confirmed"] = out["fraud_confirmed"].astype(bool)
    return out.sort_values("created_at", kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------------------------
# Shape: the data contract


def test_simulate_returns_every_contract_table(tables):
    assert list(tables) == list(TABLES)


@pytest.mark.parametrize("name", list(TABLES))
def test_columns_match_contract_in_order_with_canonical_dtypes(tables, name):
    df = tables[name]
    assert tuple(df.columns) == TABLES[name].column_names
    for column in TABLES[name].columns:
        assert str(df[column.name].dtype) == DTYPES[column.kind], column.name


@pytest.mark.parametrize("name", [n for n, t in TABLES.items() if t.key])
def test_keys_are_unique(tables, name):
    keys = tables[name][TABLES[name].key]
    assert keys.notna().all()
    assert keys.is_unique


@pytest.mark.parametrize("name", list(TABLES))
def test_non_nullable_columns_have_no_nulls(tables, name):
    df = tables[name]
    for column in TABLES[name].columns:
        if not column.nullable:
            assert df[column.name].notna().all(), column.name


@pytest.mark.parametrize(("name", "column"), [(t.name, c.name) for t in TABLES.values() for c in t.columns if c.allowed])
def test_closed_columns_hold_only_allowed_values(tables, name, column):
    values = tables[name][column].dropna()
    assert set(values.unique()) <= set(TABLES[name].column(column).allowed)


@pytest.mark.parametrize(("name", "earlier", "later"), [(t.name, a, b) for t in TABLES.values() for a, b in t.time_order])
def test_time_order_holds_when_both_times_are_set(tables, name, earlier, later):
    df = tables[name]
    both = df[earlier].notna() & df[later].notna()
    assert (df.loc[both, earlier] <= df.loc[both, later]).all()


@pytest.mark.parametrize(("name", "flag", "time"), [(t.name, f, c) for t in TABLES.values() for f, c in t.flag_times])
def test_flag_is_set_exactly_when_its_time_is(tables, name, flag, time):
    df = tables[name]
    assert (df[flag] == df[time].notna()).all()


@pytest.mark.parametrize(("table", "column", "ref_table", "ref_key"), REFERENCES)
def test_references_resolve(tables, table, column, ref_table, ref_key):
    values = tables[table][column].dropna()
    assert values.isin(tables[ref_table][ref_key]).all()


def test_simulated_tables_pass_contract_validation(tables):
    from features.validate import validate_tables

    validate_tables(tables)


@pytest.mark.parametrize(("n_reports", "days", "start"), [(1, 365, "2025-01-01"), (300, 30, "2024-06-15T12:00:00+02:00")])
def test_contract_holds_when_world_is_tiny_or_period_short(n_reports, days, start):
    from features.validate import validate_tables

    tables = simulate(n_reports, seed=3, days=days, start=start)
    assert len(tables["reports"]) == n_reports
    validate_tables(tables)


# ----------------------------------------------------------------------------------------------
# Sizes, time and determinism


def test_sizes_follow_report_count(tables):
    assert len(tables["reports"]) == N_REPORTS
    assert len(tables["accounts"]) == pytest.approx(N_REPORTS / 4, rel=0.05)
    assert len(tables["orders"]) == pytest.approx(2 * N_REPORTS, rel=0.1)
    assert len(tables["truth_reports"]) == N_REPORTS
    assert len(tables["truth_orders"]) == len(tables["orders"])


def test_events_fall_inside_the_period(tables):
    for name, column in (("reports", "created_at"), ("orders", "created_at")):
        times = tables[name][column]
        assert times.min() >= START and times.max() < END, name
    assert (tables["outcomes"]["resolved_at"] <= END).all()
    assert (tables["accounts"]["created_at"] < START).any(), "some accounts predate the period"


def test_accounts_exist_before_they_trade_or_report(tables):
    created = tables["accounts"].set_index("account_id")["created_at"]
    orders, reports = tables["orders"], tables["reports"]
    for frame, column in ((orders, "buyer_id"), (orders, "seller_id"), (reports, "subject_id"), (reports, "reporter_id")):
        known = frame[column].notna()
        assert (frame.loc[known, column].map(created) <= frame.loc[known, "created_at"]).all(), column


def test_on_step_reports_every_stage_in_order():
    seen: list[str] = []
    simulate(500, seed=1, on_step=seen.append)
    assert seen == list(SIMULATION_STEPS)


def test_same_seed_gives_identical_tables():
    first, second = simulate(3_000, seed=5), simulate(3_000, seed=5)
    for name in TABLES:
        pd.testing.assert_frame_equal(first[name], second[name])


def test_different_seed_gives_different_tables():
    first, second = simulate(3_000, seed=5), simulate(3_000, seed=6)
    assert not first["reports"].equals(second["reports"])
    assert not first["orders"]["amount"].equals(second["orders"]["amount"])


# ----------------------------------------------------------------------------------------------
# Report links


def test_reporter_is_empty_exactly_for_monitors_and_never_the_subject(tables):
    reports = tables["reports"]
    monitor = reports["reporter_type"].isin(["automated_detection", "rules_engine"])
    assert (reports["reporter_id"].isna() == monitor).all()
    assert (reports["reporter_id"] != reports["subject_id"]).all()


def test_user_reporter_type_matches_the_reporting_account_role(tables):
    reports = tables["reports"]
    role = reports["reporter_id"].map(tables["accounts"].set_index("account_id")["role"])
    user = reports["reporter_type"].isin(["buyer", "seller"])
    assert (role[user] == reports.loc[user, "reporter_type"]).all()


def test_order_linked_reports_concern_that_orders_buyer_and_seller(tables):
    reports = tables["reports"]
    linked = reports[reports["order_id"].notna()].merge(
        tables["orders"][["order_id", "buyer_id", "seller_id", "created_at"]], on="order_id", suffixes=("", "_order"))
    assert (linked["created_at_order"] < linked["created_at"]).all()
    by_buyer = linked["reporter_type"] == "buyer"
    assert (linked.loc[by_buyer, "reporter_id"] == linked.loc[by_buyer, "buyer_id"]).all()
    assert (linked.loc[by_buyer, "subject_id"] == linked.loc[by_buyer, "seller_id"]).all()
    by_seller = linked["reporter_type"] == "seller"
    assert (linked.loc[by_seller, "reporter_id"] == linked.loc[by_seller, "seller_id"]).all()
    assert (linked.loc[by_seller, "subject_id"] == linked.loc[by_seller, "buyer_id"]).all()
    engine = linked["reporter_type"] == "rules_engine"
    assert (linked.loc[engine, "subject_id"] == linked.loc[engine, "seller_id"]).all()


def test_most_logistics_reports_by_buyers_reference_an_order(tables):
    reports = tables["reports"]
    logistics = reports["category"].map(V.CATEGORY_FAMILY).eq("logistics") & reports["reporter_type"].eq("buyer")
    assert reports.loc[logistics, "order_id"].notna().mean() > 0.9


def test_livestream_reports_about_sellers_carry_that_sellers_show(tables):
    reports = tables["reports"]
    role = reports["subject_id"].map(tables["accounts"].set_index("account_id")["role"])
    live = reports[(reports["channel"] == "livestream") & (role == "seller")]
    assert live["show_id"].notna().all()
    show_seller = tables["orders"].dropna(subset=["show_id"]).drop_duplicates("show_id").set_index("show_id")["seller_id"]
    shared = live[live["show_id"].isin(show_seller.index)]
    assert len(shared) > 0
    assert (shared["show_id"].map(show_seller) == shared["subject_id"]).all()


# ----------------------------------------------------------------------------------------------
# Labels: rates, imbalance, delay


def test_order_fraud_is_rare(tables):
    assert ORDER_FRAUD_RATE[0] <= tables["orders"]["fraud"].mean() <= ORDER_FRAUD_RATE[1]


def test_fraud_confirmed_is_rare_and_implies_valid(tables):
    outcomes = tables["outcomes"]
    assert FRAUD_CONFIRMED_RATE[0] <= outcomes["fraud_confirmed"].mean() <= FRAUD_CONFIRMED_RATE[1]
    assert outcomes.loc[outcomes["fraud_confirmed"], "valid"].all()


def test_validity_is_balanced_and_severity_set_exactly_when_valid(tables):
    outcomes = tables["outcomes"]
    assert VALIDITY_RATE[0] <= outcomes["valid"].mean() <= VALIDITY_RATE[1]
    assert (outcomes["severity"].notna() == outcomes["valid"]).all()
    assert set(outcomes["severity"].dropna().unique()) == set(V.SEVERITIES)


def test_order_fraud_drifts_up_when_the_period_goes_on(tables):
    p_fraud = tables["truth_orders"]["p_fraud"]
    late = (tables["orders"]["created_at"] >= START + pd.Timedelta(days=DAYS // 2)).to_numpy()
    assert p_fraud[late].median() > 1.3 * p_fraud[~late].median()  # the median: robust to a few busy fraudsters


def test_reports_filed_near_the_end_are_still_unresolved(tables):
    reports, outcomes = tables["reports"], tables["outcomes"]
    open_ = ~reports["report_id"].isin(outcomes["report_id"])
    last_days = reports["created_at"] >= END - pd.Timedelta(days=2)
    assert open_[last_days].mean() > 0.3
    assert open_[~last_days].mean() < 0.01


def test_fraud_becomes_known_only_after_the_order(tables):
    orders = tables["orders"]
    fraud = orders[orders["fraud"]]
    delay_days = (fraud["fraud_known_at"] - fraud["created_at"]).dt.total_seconds() / 86_400
    assert (delay_days > 0).all()
    assert 10 <= delay_days.mean() <= 40


def test_truth_probabilities_are_probabilities(tables):
    truth = tables["truth_reports"]
    p_columns = [c for c in truth.columns if c.startswith("p_")]
    assert truth[p_columns].ge(0).all().all() and truth[p_columns].le(1).all().all()
    severity = truth[[f"p_severity_{s}" for s in V.SEVERITIES]].sum(axis=1)
    np.testing.assert_allclose(severity, 1.0, atol=1e-9)
    assert (truth["p_fraud"] <= truth["p_valid"] + 1e-12).all()
    assert tables["truth_orders"]["p_fraud"].between(0, 1).all()


def test_truth_probabilities_are_calibrated(resolved):
    assert resolved["valid"].mean() == pytest.approx(resolved["p_valid"].mean(), abs=0.02)
    assert resolved["fraud_confirmed"].mean() == pytest.approx(resolved["p_fraud"].mean(), abs=0.01)


# ----------------------------------------------------------------------------------------------
# Scenarios


def test_spike_puts_30_reports_on_one_subject_within_10_minutes(tables):
    reports = tables["reports"].sort_values(["subject_id", "created_at"], kind="stable").reset_index(drop=True)
    ahead = 29
    same = reports["subject_id"].shift(-ahead) == reports["subject_id"]
    span = reports["created_at"].shift(-ahead) - reports["created_at"]
    assert (same & (span <= pd.Timedelta(minutes=10))).any()


def test_spike_reports_are_mostly_valid_and_severe(resolved):
    spikes = resolved[resolved["scenario"] == "spike"]
    assert len(spikes) > 0
    assert spikes["valid"].mean() > 0.7
    assert spikes.loc[spikes["valid"], "severity"].isin(["high", "critical"]).mean() > 0.5


def test_spike_yields_one_violation_not_one_per_report(tables, labelled):
    spikes = labelled[(labelled["scenario"] == "spike") & labelled["valid"].eq(True)]
    windows = spikes.groupby("show_id").agg(
        account_id=("subject_id", "first"), start=("created_at", "min"), end=("created_at", "max"))
    hits = tables["enforcements"].merge(windows, on="account_id")
    inside = hits[(hits["occurred_at"] >= hits["start"]) & (hits["occurred_at"] <= hits["end"])]
    assert len(spikes) >= 20 * len(windows)
    # Other reports about the same account in those minutes may make a separate case, but rarely.
    assert len(windows) // 2 <= len(inside) <= 1.2 * len(windows) + 2


def test_brigading_is_present_and_rarely_valid(resolved, tables):
    brigade = resolved[resolved["scenario"] == "brigading"]
    assert len(brigade) > 0.03 * N_REPORTS
    assert brigade["valid"].mean() < 0.1
    created = tables["accounts"].set_index("account_id")["created_at"]
    age_days = lambda df: (df["created_at"] - df["reporter_id"].map(created)).dt.days  # noqa: E731
    others = resolved[(resolved["reporter_type"] == "buyer") & (resolved["scenario"] != "brigading")]
    assert age_days(brigade).median() < age_days(others).median()


def test_every_scenario_appears(tables):
    from simulator.reports import SCENARIOS

    assert set(tables["truth_reports"]["scenario"]) == set(SCENARIOS)


def test_retaliatory_reports_follow_a_dispute_on_the_same_order(labelled, tables):
    retaliation = labelled[labelled["scenario"] == "retaliatory"].merge(
        tables["orders"][["order_id", "cancelled_at", "refunded_at"]], on="order_id")
    dispute = retaliation[["cancelled_at", "refunded_at"]].min(axis=1)
    assert len(retaliation) > 0
    assert (dispute <= retaliation["created_at"]).all()


# ----------------------------------------------------------------------------------------------
# Signal: history predicts labels, raw fields alone do not


def test_raw_report_fields_do_not_separate_validity_when_split_in_time(resolved):
    cut = int(len(resolved) * 0.7)
    x = pd.get_dummies(resolved[["reporter_type", "channel", "category"]].astype(object)).astype(float)
    y = resolved["valid"].to_numpy()
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(x.iloc[:cut], y[:cut])
    tree_auc = roc_auc_score(y[cut:], tree.predict_proba(x.iloc[cut:])[:, 1])
    truth_auc = roc_auc_score(y[cut:], resolved["p_valid"].iloc[cut:])
    assert truth_auc >= 0.85
    assert tree_auc <= 0.75
    assert truth_auc - tree_auc >= 0.1


def _subject_upheld_rate(resolved: pd.DataFrame) -> pd.Series:
    """Share of the subject's reports upheld so far, counting only reviews closed before each report."""
    closed = resolved[["subject_id", "resolved_at", "valid"]].sort_values("resolved_at", kind="stable")
    closed["seen"] = closed.groupby("subject_id").cumcount() + 1
    closed["upheld"] = closed.groupby("subject_id")["valid"].cumsum()
    asof = pd.merge_asof(
        resolved[["report_id", "subject_id", "created_at"]].sort_values("created_at", kind="stable"),
        closed.rename(columns={"resolved_at": "created_at"})[["subject_id", "created_at", "seen", "upheld"]],
        on="created_at", by="subject_id", allow_exact_matches=False,
    ).set_index("report_id").reindex(resolved["report_id"]).fillna(0)
    return pd.Series(((asof["upheld"] + 0.5) / (asof["seen"] + 1)).to_numpy(), index=resolved.index)


def test_subject_history_predicts_validity_better_than_raw_fields(resolved):
    cut = int(len(resolved) * 0.7)
    later = resolved.iloc[cut:]
    x = pd.get_dummies(resolved[["reporter_type", "channel", "category"]].astype(object)).astype(float)
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(x.iloc[:cut], resolved["valid"].iloc[:cut])
    tree_auc = roc_auc_score(later["valid"], tree.predict_proba(x.iloc[cut:])[:, 1])
    history_auc = roc_auc_score(later["valid"], _subject_upheld_rate(resolved).iloc[cut:])
    assert history_auc - tree_auc >= 0.1


def test_descriptions_cite_evidence_more_often_when_valid_but_not_always(resolved):
    user = resolved[resolved["reporter_type"].isin(["buyer", "seller"])]
    evidence = user["description"].str.contains(EVIDENCE_WORDS, regex=True)
    by_label = evidence.groupby(user["valid"]).mean()
    assert by_label[True] - by_label[False] >= 0.2
    assert 0.05 <= by_label[False] and by_label[True] <= 0.9
    empty = (user["description"] == "").mean()
    assert 0.0 < empty < 0.2


def test_review_is_faster_for_severe_reports(resolved):
    hours = (resolved["resolved_at"] - resolved["created_at"]).dt.total_seconds() / 3600
    valid = resolved["valid"]
    critical, low = valid & (resolved["severity"] == "critical"), valid & (resolved["severity"] == "low")
    assert hours[critical].median() < hours[low].median()


# ----------------------------------------------------------------------------------------------
# Enforcements


def test_enforcements_include_history_from_before_the_period(tables):
    assert (tables["enforcements"]["decided_at"] < START).any()


def test_enforcement_family_follows_category_and_days_follow_action(tables):
    enforcements = tables["enforcements"]
    assert (enforcements["family"] == enforcements["category"].map(V.CATEGORY_FAMILY)).all()
    untimed = enforcements["action"].isin(["warning", "ban", "revoke_selling"])
    assert (enforcements.loc[untimed, "action_days"] == 0).all()
    assert (enforcements.loc[~untimed, "action_days"].between(1, 30)).all()


def test_nothing_is_enforced_on_an_account_after_its_ban(tables):
    enforcements = tables["enforcements"]
    banned_at = enforcements[enforcements["action"] == "ban"].groupby("account_id")["decided_at"].min()
    after = enforcements["decided_at"] > enforcements["account_id"].map(banned_at)
    assert not after.any()


def test_seller_logistics_actions_use_payout_and_commission(tables):
    enforcements = tables["enforcements"]
    logistics = enforcements[enforcements["family"] == "logistics"]
    assert logistics["action"].isin(["lose_early_payout", "increased_commission"]).any()


def test_banned_accounts_do_nothing_after_their_ban(tables):
    enforcements = tables["enforcements"]
    banned_at = enforcements[enforcements["action"] == "ban"].groupby("account_id")["decided_at"].min()
    assert len(banned_at) > 0
    reports, orders = tables["reports"], tables["orders"]
    for frame, column in ((reports, "subject_id"), (reports, "reporter_id"), (orders, "buyer_id"), (orders, "seller_id")):
        assert not (frame[column].map(banned_at) < frame["created_at"]).any(), column
