"""Proactive monitors: fulfilment rules and transaction monitoring turn data into intake-ready report records."""
from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import known_at

from config import settings as S
from features.build import ORDER_FEATURES, fulfillment_block
from features.contract import REPORTS
from features.history import History
from features.streams import Query, seconds
from features.validate import validate_table, validate_tables
from serving.input_checks import parse_reports
from serving.queue.monitors import (
    EVIDENCE_KEY,
    MAX_LISTED_ORDERS,
    MonitorConfig,
    fulfillment_reports,
    transaction_reports,
)
from training import registry

AS_OF = pd.Timestamp("2025-03-31T00:00:00Z")
ONLY_LATE = MonitorConfig(cancel_rate=1.0, refund_rate=1.0)



def day(d: float) -> pd.Timestamp:
    """A time d days before AS_OF (negative: after it)."""
    return AS_OF - pd.Timedelta(days=d)


class Shop:
    """Hand-built accounts and orders, validated against the contract before use."""

    def __init__(self):
        self.accounts = [{"account_id": "b1", "created_at": day(400), "role": "buyer", "verified": True}]
        self.orders: list[dict] = []

    def seller(self, seller_id: str, age_days: float = 200) -> "Shop":
        self.accounts.append({"account_id": seller_id, "created_at": day(age_days), "role": "seller", "verified": True})
        return self

    def order(self, order_id: str, seller: str, created: float, ship_by: float | None, shipped: float | None = None,
              cancelled: float | None = None, refunded: float | None = None, amount: float = 20.0) -> "Shop":
        """An order with its times in days before AS_OF; shipped None = never shipped."""
        def at(d):
            return None if d is None else day(d)
        self.orders.append({
            "order_id": order_id, "buyer_id": "b1", "seller_id": seller, "show_id": None, "amount": amount,
            "created_at": day(created), "ship_by": at(ship_by), "shipped_at": at(shipped), "delivered_at": None,
            "cancelled": cancelled is not None, "cancelled_at": at(cancelled),
            "refunded": refunded is not None, "refunded_at": at(refunded), "fraud": False, "fraud_known_at": None,
        })
        return self

    def tables(self) -> dict[str, pd.DataFrame]:
        return validate_tables({"accounts": pd.DataFrame(self.accounts), "orders": pd.DataFrame(self.orders)},
                               require=["accounts", "orders"])


def run_fulfillment(shop: Shop, config: MonitorConfig = MonitorConfig(), as_of=AS_OF) -> list[dict]:
    t = shop.tables()
    return fulfillment_reports(t["orders"], History.from_tables(t), as_of, config)


def late_seller(shop: Shop, seller: str = "s1") -> Shop:
    """10 orders due in the window, 4 of them missed; plus orders that must not count."""
    shop.seller(seller)
    for i in range(6):  # shipped in time
        shop.order(f"{seller}-ok{i}", seller, created=20 + i, ship_by=18 + i, shipped=19 + i)
    shop.order(f"{seller}-never", seller, created=25, ship_by=22)  # never shipped
    shop.order(f"{seller}-slow", seller, created=15, ship_by=12, shipped=10)  # shipped 2 days late
    shop.order(f"{seller}-after", seller, created=6, ship_by=3, shipped=-2)  # ships only after as_of: still missed
    shop.order(f"{seller}-never2", seller, created=4, ship_by=1)
    shop.order(f"{seller}-not-due", seller, created=1, ship_by=-1)  # ship-by after as_of: not yet due
    shop.order(f"{seller}-cancelled", seller, created=10, ship_by=8, cancelled=9)  # cancelled before ship-by
    shop.order(f"{seller}-old", seller, created=45, ship_by=40)  # due before the window
    return shop


def contract_frame(records: list[dict]) -> pd.DataFrame:
    """Records without the extra key, as a validated reports table."""
    return validate_table("reports", pd.DataFrame([{k: r[k] for k in REPORTS.column_names} for r in records]))


# ---------------------------------------------------------------------------
# Configuration


def test_config_from_dict_sets_known_keys_and_keeps_defaults():
    config = MonitorConfig.from_dict({"fraud_threshold": 0.7, "min_orders": 10})
    assert config == MonitorConfig(fraud_threshold=0.7, min_orders=10)


def test_config_from_dict_names_an_unknown_key():
    with pytest.raises(ValueError, match="late_rte"):
        MonitorConfig.from_dict({"late_rte": 0.3})


@pytest.mark.parametrize("bad", [{"late_rate": 1.5}, {"fraud_threshold": -0.1}, {"min_orders": 0},
                                 {"lookback_days": 2.5}, {"cancel_rate": "0.2"}, {"min_orders": True}])
def test_config_rejects_values_outside_their_range(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        MonitorConfig.from_dict(bad)


# ---------------------------------------------------------------------------
# Fulfilment rules on hand-built orders


def test_seller_missing_ship_by_on_4_of_10_due_orders_gets_one_shipping_delay_report_listing_them():
    reports = run_fulfillment(late_seller(Shop()), ONLY_LATE)
    assert len(reports) == 1
    r = reports[0]
    assert (r["report_id"], r["subject_id"], r["category"]) == ("fr-s1-2025-03-31-late", "s1", "shipping_delay")
    assert (r["reporter_type"], r["channel"], r["reporter_id"], r["order_id"]) == ("rules_engine", "system", None, None)
    assert r["created_at"] == "2025-03-31T00:00:00+00:00"
    ev = r[EVIDENCE_KEY]
    # In the order they became late (by ship-by).
    assert ev["orders"] == ["s1-never", "s1-slow", "s1-after", "s1-never2"]
    assert (ev["rule"], ev["count"], ev["base"], ev["rate"], ev["threshold"]) == ("late", 4, 10, 0.4, 0.2)
    for order_id in ev["orders"]:
        assert order_id in r["description"]
    assert "40.0%" in r["description"] and "20.0%" in r["description"]
    assert ev["seller_age_days"] == 200.0


def test_orders_without_a_ship_by_are_never_due_nor_late():
    """A payment or a digital good promises no shipping: it neither counts as due nor as missed."""
    shop = late_seller(Shop())
    for i in range(10):
        shop.order(f"s1-payment{i}", "s1", created=20 - i, ship_by=None)  # never shipped either
    (report,) = run_fulfillment(shop, ONLY_LATE)
    assert (report[EVIDENCE_KEY]["count"], report[EVIDENCE_KEY]["base"]) == (4, 10)  # as without them


def test_orders_not_yet_due_at_as_of_are_not_judged():
    # Ten orders not shipped, but every ship-by is after as_of: nothing is late yet.
    shop = Shop().seller("s1")
    for i in range(10):
        shop.order(f"o{i}", "s1", created=2, ship_by=-1 - i)
    assert run_fulfillment(shop, ONLY_LATE) == []
    # The same orders judged a day after the last ship-by are all late.
    later = run_fulfillment(shop, ONLY_LATE, as_of=AS_OF + pd.Timedelta(days=12))
    assert [r[EVIDENCE_KEY]["count"] for r in later] == [10]


def test_seller_below_min_orders_is_not_judged():
    shop = Shop().seller("s1")
    for i in range(4):
        shop.order(f"o{i}", "s1", created=10, ship_by=5)  # all four missed
    assert run_fulfillment(shop, ONLY_LATE) == []
    assert len(run_fulfillment(shop, MonitorConfig(min_orders=4, cancel_rate=1.0, refund_rate=1.0))) == 1


def test_a_rate_equal_to_its_threshold_does_not_fire():
    shop = Shop().seller("s1")
    for i in range(10):
        shop.order(f"o{i}", "s1", created=10, ship_by=5, shipped=None if i < 2 else 6)  # 2 of 10 late
    assert run_fulfillment(shop, ONLY_LATE) == []
    assert len(run_fulfillment(shop, MonitorConfig(late_rate=0.19, cancel_rate=1.0, refund_rate=1.0))) == 1


def test_cancellations_in_the_window_open_a_missing_item_case_and_later_ones_do_not_count():
    shop = Shop().seller("s2")
    for i in range(10):
        shop.order(f"o{i}", "s2", created=20, ship_by=17, shipped=18)
    for i, when in enumerate((19, 12, 5)):
        shop.order(f"c{i}", "s2", created=when + 1, ship_by=when - 1, cancelled=when)
    shop.order("c-later", "s2", created=3, ship_by=1, cancelled=-1)  # cancelled after as_of
    reports = run_fulfillment(shop, MonitorConfig(late_rate=1.0))
    assert [r["report_id"] for r in reports] == ["fr-s2-2025-03-31-cancel"]
    ev = reports[0][EVIDENCE_KEY]
    assert reports[0]["category"] == "missing_item"
    assert ev["orders"] == ["c0", "c1", "c2"]
    assert (ev["count"], ev["base"]) == (3, 14)  # 14 orders sold in the window


def test_refunds_in_the_window_open_a_missing_item_case_per_seller_and_rule():
    shop = Shop().seller("s3")
    for i in range(10):
        shop.order(f"o{i}", "s3", created=20, ship_by=17, shipped=18, refunded=10 if i < 3 else None)
    shop.order("r-later", "s3", created=40, ship_by=38, shipped=39, refunded=-3)  # refunded after as_of
    reports = run_fulfillment(shop)
    assert [r["report_id"] for r in reports] == ["fr-s3-2025-03-31-refund"]
    assert reports[0][EVIDENCE_KEY]["orders"] == ["o0", "o1", "o2"]
    assert "refund rate 30.0%" in reports[0]["description"]


def test_a_seller_breaking_two_rules_gets_one_report_per_rule():
    shop = Shop().seller("s4")
    for i in range(10):
        shop.order(f"o{i}", "s4", created=20, ship_by=15, shipped=None if i < 5 else 16, refunded=5 if i < 5 else None)
    ids = [r["report_id"] for r in run_fulfillment(shop)]
    assert ids == ["fr-s4-2025-03-31-late", "fr-s4-2025-03-31-refund"]


def test_description_lists_the_first_50_orders_and_counts_the_rest_while_evidence_keeps_all():
    shop = Shop().seller("s5")
    for i in range(60):
        shop.order(f"o{i:02d}", "s5", created=20, ship_by=15)
    (r,) = run_fulfillment(shop, ONLY_LATE)
    assert len(r[EVIDENCE_KEY]["orders"]) == 60
    assert "o49" in r["description"] and "o50" not in r["description"]
    assert f"and {60 - MAX_LISTED_ORDERS} more." in r["description"]


def test_fulfillment_reports_are_deterministic_and_ignore_row_order():
    shop = late_seller(late_seller(Shop(), "s1"), "s9")
    t = shop.tables()
    h = History.from_tables(t)
    first = fulfillment_reports(t["orders"], h, AS_OF, ONLY_LATE)
    shuffled = t["orders"].sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert fulfillment_reports(shuffled, h, AS_OF, ONLY_LATE) == first
    assert [r["report_id"] for r in first] == ["fr-s1-2025-03-31-late", "fr-s9-2025-03-31-late"]


def test_rerunning_the_same_day_reuses_the_report_ids():
    shop = late_seller(Shop())
    morning = run_fulfillment(shop, ONLY_LATE, as_of=AS_OF + pd.Timedelta(hours=1))
    evening = run_fulfillment(shop, ONLY_LATE, as_of=AS_OF + pd.Timedelta(hours=20))
    assert [r["report_id"] for r in morning] == [r["report_id"] for r in evening] == ["fr-s1-2025-03-31-late"]


def test_fulfillment_reports_pass_the_reports_contract_once_the_evidence_key_is_removed():
    reports = run_fulfillment(late_seller(Shop()), ONLY_LATE)
    assert set(reports[0]) == set(REPORTS.column_names) | {EVIDENCE_KEY}
    frame = contract_frame(reports)
    assert frame.loc[0, "created_at"] == AS_OF


def test_naive_as_of_is_read_as_utc():
    shop = late_seller(Shop())
    assert run_fulfillment(shop, ONLY_LATE, as_of=AS_OF.tz_localize(None).to_pydatetime()) == \
        run_fulfillment(shop, ONLY_LATE)


# ---------------------------------------------------------------------------
# Transaction monitoring on hand-built orders, with a transparent stand-in model


class AmountModel:
    """Fraud risk = amount / 1000; the amount and the account ages contribute, in that order."""

    features = list(ORDER_FEATURES)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return X["amount"].to_numpy() / 1000

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(X), len(self.features)))
        for weight, name in ((3.0, "amount"), (2.0, "buyer_age_days"), (1.0, "seller_age_days"), (-5.0, "has_show")):
            out[:, self.features.index(name)] = weight
        return out


def test_transaction_monitor_flags_only_window_orders_above_the_threshold():
    shop = Shop().seller("s1")
    shop.order("big", "s1", created=3, ship_by=1, amount=900)
    shop.order("small", "s1", created=3, ship_by=1, amount=100)
    shop.order("at-threshold", "s1", created=3, ship_by=1, amount=500)
    shop.order("big-too-old", "s1", created=31, ship_by=29, amount=900)
    shop.order("big-after-as-of", "s1", created=-1, ship_by=-3, amount=900)
    t = shop.tables()
    reports = transaction_reports(t["orders"], History.from_tables(t), AmountModel(), AS_OF, MonitorConfig())
    assert [r["report_id"] for r in reports] == ["tm-big"]
    r = reports[0]
    assert (r["subject_id"], r["order_id"], r["category"]) == ("b1", "big", "payment_fraud")
    assert (r["reporter_type"], r["channel"], r["reporter_id"], r["show_id"]) == \
        ("automated_detection", "system", None, None)
    assert r["created_at"] == "2025-03-31T00:00:00+00:00"
    assert "0.90" in r["description"]
    # The three features pushing the risk up, largest first; the negative one is not a reason.
    reasons = r["description"].split("Top contributing features: ")[1]
    assert [p.split("=")[0] for p in reasons.split(", ")] == ["amount", "buyer_age_days", "seller_age_days"]
    contract_frame(reports)


def test_transaction_report_id_is_stable_across_runs_that_see_the_same_order():
    shop = Shop().seller("s1").order("big", "s1", created=3, ship_by=1, amount=900)
    t = shop.tables()
    h = History.from_tables(t)
    runs = [transaction_reports(t["orders"], h, AmountModel(), AS_OF + pd.Timedelta(days=d), MonitorConfig())
            for d in (0, 10)]
    assert [r["report_id"] for run in runs for r in run] == ["tm-big", "tm-big"]


# ---------------------------------------------------------------------------
# Both monitors on the simulated marketplace, with the real trained model


@pytest.fixture(scope="module")
def sim(tables):
    """The simulation, its history, and a monitor time 30 days before its last order (labels mostly in)."""
    as_of = (tables["orders"]["created_at"].max() - pd.Timedelta(days=30)).ceil("D")
    return tables, History.from_tables(tables), as_of


@pytest.fixture(scope="module")
def order_model(trained, settings):
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    return registry.load(S.FRAUD_MODEL, S.CHAMPION).bundle.order


def test_fulfillment_rates_are_the_seller_rates_the_models_see(sim):
    """With every threshold at 0, the reports are exactly the (seller, rule) pairs fulfillment_block rates above 0."""
    tables, h, as_of = sim
    everything = MonitorConfig(late_rate=0.0, cancel_rate=0.0, refund_rate=0.0, min_orders=1)
    reports = fulfillment_reports(tables["orders"], h, as_of, everything)
    accounts = pd.Series(h.accounts.index)
    at = np.full(len(accounts), seconds(pd.Series([as_of]))[0])
    block = fulfillment_block(h, Query(h.account_codes(accounts), at), "seller")
    expected = {}
    for rule in ("late", "cancel", "refund"):
        rates = block[f"seller_{rule}_rate_30d"]
        expected.update({(a, rule): rate for a, rate in zip(accounts, rates) if rate > 0})
    got = {(r["subject_id"], r[EVIDENCE_KEY]["rule"]): r[EVIDENCE_KEY]["rate"] for r in reports}
    assert len(got) > 20
    assert got.keys() == expected.keys()
    assert all(got[k] == pytest.approx(expected[k]) for k in got)
    for r in reports:
        ev = r[EVIDENCE_KEY]
        assert ev["count"] == len(ev["orders"]) == len(set(ev["orders"]))


def test_fulfillment_reports_use_only_what_was_known_at_as_of(sim):
    tables, h, as_of = sim
    past = known_at(tables, as_of)
    now = fulfillment_reports(tables["orders"], h, as_of, MonitorConfig())
    assert now, "the default rules should fire on the simulation"
    assert fulfillment_reports(past["orders"], History.from_tables(past), as_of, MonitorConfig()) == now


def test_transaction_reports_use_only_what_was_known_at_as_of(sim, order_model):
    tables, h, as_of = sim
    past = known_at(tables, as_of)
    now = transaction_reports(tables["orders"], h, order_model, as_of, MonitorConfig())
    assert now
    assert transaction_reports(past["orders"], History.from_tables(past), order_model, as_of, MonitorConfig()) == now


def test_flagged_orders_are_far_more_often_fraud_than_the_window(sim, order_model):
    tables, h, as_of = sim
    orders = tables["orders"]
    window = orders[(orders["created_at"] >= as_of - pd.Timedelta(days=30)) & (orders["created_at"] < as_of)]
    reports = transaction_reports(orders, h, order_model, as_of, MonitorConfig())
    flagged = orders.set_index("order_id").loc[[r["order_id"] for r in reports]]
    base = window["fraud"].mean()
    assert len(flagged) >= 10
    assert flagged["fraud"].mean() >= 5 * base, (flagged["fraud"].mean(), base)


def test_a_higher_fraud_threshold_flags_a_subset_of_fewer_orders(sim, order_model):
    tables, h, as_of = sim

    def flagged(threshold: float) -> set[str]:
        config = MonitorConfig(fraud_threshold=threshold)
        return {r["report_id"] for r in transaction_reports(tables["orders"], h, order_model, as_of, config)}

    assert flagged(0.6) < flagged(0.2)


def test_transaction_reports_are_filed_after_their_order_about_its_buyer(sim, order_model):
    tables, h, as_of = sim
    reports = transaction_reports(tables["orders"], h, order_model, as_of, MonitorConfig())
    orders = tables["orders"].set_index("order_id").loc[[r["order_id"] for r in reports]]
    frame = contract_frame(reports)
    assert (frame["created_at"].reset_index(drop=True) >= orders["created_at"].reset_index(drop=True)).all()
    assert frame["subject_id"].tolist() == orders["buyer_id"].tolist()
    for r in reports:
        named = r["description"].split("Top contributing features: ")[1].rstrip(".").split(", ")
        assert len(named) == 3 and all(n.split("=")[0] in order_model.features for n in named)


def test_monitor_reports_are_accepted_by_the_intake_parser(sim, order_model):
    tables, h, as_of = sim
    records = transaction_reports(tables["orders"], h, order_model, as_of, MonitorConfig()) + \
        fulfillment_reports(tables["orders"], h, as_of, MonitorConfig())
    plain = [{k: v for k, v in r.items() if k != EVIDENCE_KEY} for r in records]
    frame = parse_reports(plain, max_batch=len(plain), history=h)
    assert len(frame) == len(records)
    assert frame["report_id"].is_unique
