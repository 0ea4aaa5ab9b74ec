"""The penalty mapper: the ladder rule by rule, and its properties for any input."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import vocabulary as V
from policy.file import DEFAULT_POLICY, load_policy
from policy.penalty import (
    Account,
    Action,
    PastViolation,
    PolicyError,
    Violation,
    account_health,
    decide,
    parse_policy,
)

POLICY = load_policy()
NOW = datetime(2025, 6, 1, tzinfo=UTC)
SELLER, BUYER = Account("s1", "seller"), Account("b1", "buyer")


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def v(category: str, severity: str, **kw) -> Violation:
    return Violation(V.family_of(category), category, severity, kw.pop("occurred_at", ago(1)), **kw)


def past(category: str, severity: str, days_ago: float, *actions: Action, appeal: str | None = None) -> PastViolation:
    return PastViolation(ago(days_ago), V.family_of(category), category, severity, actions or (Action("warning"),), appeal)


WARN = Action("warning")
SUSP2, SUSP7 = Action("suspension", 2), Action("suspension", 7)

# One row per rule in the source documents: (rule, account, violation, history, expected actions, expected health)
LADDER = [
    ("a less serious violation gets a warning",
     SELLER, v("spam", "low"), [], {"warning", "reduced_discoverability"}, "good"),
    ("violations are cumulative: repeated minor ones end in a suspension",
     SELLER, v("harassment", "low"), [past("spam", "low", 10), past("spam", "low", 20), past("spam", "low", 30)],
     {"suspension", "feature_restriction"}, "poor"),
    ("one warning on record: good; several: fair",
     BUYER, v("disruptive_auction_behavior", "low"), [past("spam", "low", 10)], {"warning"}, "fair"),
    ("behavioural suspensions are 2 or 7 days; a 7-day one revokes a seller's selling",
     SELLER, v("threats_of_harm", "high"), [past("harassment", "high", 40, SUSP2)],
     {"suspension", "revoke_selling"}, "very_poor"),
    ("revoking selling is for sellers only",
     BUYER, v("threats_of_harm", "high"), [past("harassment", "high", 40, SUSP2)], {"suspension"}, "very_poor"),
    ("serious violations lead to a permanent ban",
     SELLER, v("threats_of_harm", "critical"), [], {"ban"}, "very_poor"),
    ("a ban stays on the record: a later violation is a ban again",
     BUYER, v("spam", "low"), [past("hate_speech", "critical", 400, Action("ban"))], {"ban"}, "very_poor"),
    ("a suspension never expires: further violations get suspensions",
     BUYER, v("spam", "low"), [past("harassment", "high", 400, SUSP2)], {"suspension"}, "poor"),
    ("most violations expire after 180 days",
     BUYER, v("spam", "low"), [past("spam", "medium", 200), past("spam", "medium", 190)], {"warning"}, "good"),
    ("an overturned violation no longer counts",
     BUYER, v("spam", "low"), [past("spam", "high", 10, appeal="overturned")], {"warning"}, "good"),
    ("an upheld appeal keeps the violation counting",
     BUYER, v("spam", "medium"), [past("spam", "medium", 10, appeal="upheld")], {"suspension"}, "poor"),
    ("logistics: a seller loses early payout (at most 30 days)",
     SELLER, v("shipping_delay", "medium"), [past("missing_item", "low", 15)], {"warning", "lose_early_payout"}, "fair"),
    ("logistics: then increased commission too (at most 30 days)",
     SELLER, v("shipping_delay", "medium"), [past("missing_item", "medium", 15), past("wrong_item", "medium", 30)],
     {"lose_early_payout", "increased_commission"}, "fair"),
    ("logistics repeated: suspension with payout and commission penalties",
     SELLER, v("damaged_item", "high"), [past("missing_item", "high", 15), past("wrong_item", "medium", 30)],
     {"suspension", "lose_early_payout", "increased_commission"}, "very_poor"),
    ("a seller passing the shipping quiz reduces a logistics sentence",
     SELLER, v("shipping_delay", "medium", remedial_completed_at=ago(0.5)),
     [past("missing_item", "medium", 15), past("wrong_item", "medium", 30)], {"warning", "lose_early_payout"}, "fair"),
    ("behavioural sentences cannot be reduced",
     SELLER, v("harassment", "medium", remedial_completed_at=ago(0.5)), [past("spam", "medium", 10)],
     {"suspension", "feature_restriction"}, "poor"),
    ("reduced discoverability for some violations (temporary)",
     SELLER, v("misrepresented_item", "low"), [], {"warning", "reduced_discoverability"}, "good"),
    ("loss of single features such as direct messages",
     BUYER, v("harassment", "low"), [], {"warning", "feature_restriction"}, "good"),
    ("fraud is suspended and selling revoked",
     SELLER, v("counterfeit", "medium"), [], {"suspension", "revoke_selling"}, "very_poor"),
    ("a severe violation under investigation puts the account on hold",
     SELLER, v("hate_speech", "critical", stage="under_investigation"), [], {"investigation_hold"}, "excellent"),
    ("a mild violation under investigation waits for the outcome",
     SELLER, v("spam", "low", stage="under_investigation"), [], set(), "excellent"),
]


@pytest.mark.parametrize("rule, account, violation, history, actions, health", LADDER, ids=[r[0] for r in LADDER])
def test_ladder_rule(rule, account, violation, history, actions, health):
    decision = decide(NOW, account, violation, history, POLICY)
    assert {a.type for a in decision.actions} == actions, decision.reasons
    assert decision.account_health == health, decision.reasons
    assert decision.reasons and decision.policy_version == POLICY.version


def test_health_states_follow_the_record():
    assert account_health(NOW, SELLER, [], POLICY) == "excellent"
    assert account_health(NOW, SELLER, [past("spam", "low", 5)], POLICY) == "good"
    assert account_health(NOW, SELLER, [past("spam", "low", 5), past("spam", "low", 6)], POLICY) == "fair"
    assert account_health(NOW, SELLER, [past("spam", "medium", 5, SUSP2)], POLICY) == "poor"
    assert account_health(NOW, SELLER, [past("spam", "high", 5, SUSP7, Action("revoke_selling"))], POLICY) == "very_poor"


def test_reasons_cite_the_rule_that_fired():
    d = decide(NOW, SELLER, v("harassment", "low"), [past("spam", "low", 10)] * 3, POLICY)
    text = " ".join(d.reasons)
    assert "ladders.behavioral" in text and "suspension_2d" in text and "category_extras.harassment" in text


def test_policy_version_changes_with_the_file_content():
    text = DEFAULT_POLICY.read_text()
    assert parse_policy(text).version == POLICY.version
    assert parse_policy(text + "\n# reviewed\n").version != POLICY.version


@pytest.mark.parametrize("edit, words", [
    (("{type: suspension, days: 7}, {type: revoke_selling}]}", "{type: suspension, days: 31}, {type: revoke_selling}]}"),
     "between 1 and 30"),
    (("{type: suspension, days: 2}", "{type: suspension, days: 3}"), "behavioural suspensions"),
    (("{type: lose_early_payout, days: 30}]}", "{type: lose_early_payout, days: 45}]}"), "between 1 and 30"),
    (("{type: warning}]}", "{type: scolding}]}"), "unknown action type"),
])
def test_policy_breaking_the_source_limits_is_refused(edit, words):
    text = DEFAULT_POLICY.read_text().replace(*edit, 1)
    with pytest.raises(PolicyError, match=words):
        parse_policy(text)


# ---------------------------------------------------------------------------
# Properties over any input.

categories = st.sampled_from(V.CATEGORIES)
severities = st.sampled_from(V.SEVERITIES)
accounts = st.sampled_from([SELLER, BUYER])
action_lists = st.lists(
    st.sampled_from([WARN, SUSP2, SUSP7, Action("ban"), Action("lose_early_payout", 30)]), min_size=1, max_size=2
).map(tuple)


@st.composite
def past_violations(draw, max_age: int = 400):
    category = draw(categories)
    return PastViolation(ago(draw(st.integers(1, max_age))), V.family_of(category), category, draw(severities),
                         draw(action_lists), draw(st.sampled_from([None, None, "upheld", "overturned"])))


@st.composite
def violations(draw):
    category = draw(categories)
    remedial = draw(st.sampled_from([None, ago(0.25)]))
    return Violation(V.family_of(category), category, draw(severities), ago(0.5),
                     draw(st.sampled_from(["confirmed", "confirmed", "under_investigation"])), remedial)


def level(decision, violation) -> int:
    """Where a decision stands: its rung in the family's ladder (hold above nothing)."""
    names = [r.name for r in POLICY.ladders[violation.family]]
    if decision.rung in names:
        return names.index(decision.rung) + 1
    return {"none": 0, "investigation_hold": 1}[decision.rung]


histories = st.lists(past_violations(), max_size=6)


@settings(max_examples=300, deadline=None)
@given(accounts, violations(), histories, st.randoms())
def test_same_inputs_same_decision_byte_for_byte_in_any_order(account, violation, history, rnd):
    first = json.dumps(decide(NOW, account, violation, history, POLICY).to_dict(), sort_keys=True)
    shuffled = list(history)
    rnd.shuffle(shuffled)
    assert json.dumps(decide(NOW, account, violation, shuffled, POLICY).to_dict(), sort_keys=True) == first


@settings(max_examples=300, deadline=None)
@given(accounts, violations(), histories, past_violations(max_age=179))
def test_adding_a_counting_violation_never_lightens_the_outcome(account, violation, history, extra):
    extra = PastViolation(extra.occurred_at, extra.family, extra.category, extra.severity, extra.actions, None)
    before = decide(NOW, account, violation, history, POLICY)
    after = decide(NOW, account, violation, [*history, extra], POLICY)
    assert level(after, violation) >= level(before, violation)


@settings(max_examples=300, deadline=None)
@given(accounts, violations(), histories)
def test_raising_severity_never_lightens_the_outcome(account, violation, history):
    order = list(V.SEVERITIES)
    for higher in order[order.index(violation.severity) + 1:]:
        raised = Violation(violation.family, violation.category, higher, violation.occurred_at, violation.stage,
                           violation.remedial_completed_at)
        assert level(decide(NOW, account, raised, history, POLICY), raised) >= \
            level(decide(NOW, account, violation, history, POLICY), violation)


@settings(max_examples=200, deadline=None)
@given(accounts, violations(), histories, categories, severities, st.integers(181, 1000))
def test_violations_older_than_180_days_stop_counting(account, violation, history, category, severity, age):
    old = PastViolation(ago(age), V.family_of(category), category, severity, (WARN,), None)
    with_old = decide(NOW, account, violation, [*history, old], POLICY)
    assert with_old.actions == decide(NOW, account, violation, history, POLICY).actions
    recent = PastViolation(ago(179), V.family_of(category), category, severity, (WARN,), None)
    if violation.stage == "confirmed":
        assert decide(NOW, account, violation, [*history, recent], POLICY).points > with_old.points


@settings(max_examples=300, deadline=None)
@given(accounts, violations(), histories)
def test_durations_stay_within_the_policy_bounds(account, violation, history):
    for action in decide(NOW, account, violation, history, POLICY).actions:
        if action.type in POLICY.max_days:
            assert action.days is not None and 1 <= action.days <= POLICY.max_days[action.type]
        if action.type == "suspension" and violation.family == "behavioral":
            assert action.days in (2, 7)


@settings(max_examples=300, deadline=None)
@given(violations(), histories)
def test_buyers_never_get_seller_only_actions(violation, history):
    types = {a.type for a in decide(NOW, BUYER, violation, history, POLICY).actions}
    assert not types & POLICY.seller_only


@settings(max_examples=300, deadline=None)
@given(accounts, violations(), histories)
def test_remedial_step_lowers_only_logistics_sentences_of_sellers(account, violation, history):
    without = Violation(violation.family, violation.category, violation.severity, violation.occurred_at,
                        violation.stage, None)
    done = Violation(violation.family, violation.category, violation.severity, violation.occurred_at,
                     violation.stage, ago(0.25))
    plain = decide(NOW, account, without, history, POLICY)
    reduced = decide(NOW, account, done, history, POLICY)
    if violation.family == "logistics" and account.role == "seller":
        assert level(reduced, done) <= level(plain, without)
    else:
        assert reduced.actions == plain.actions
