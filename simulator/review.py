"""Review and enforcement: labels drawn from the true probabilities, review delays, the action ladder.

Labels are drawn only from the probabilities written to truth_reports, so the
truth table really is the best possible predictor. Enforcement turns confirmed
incidents into violations and picks the action from severity and the account's
recent record, which is what makes an account's history predictive.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features import vocabulary as V
from simulator.reports import (
    CAT,
    FAMILY_OF_CAT,
    KIND_CATEGORY_MIX,
    KIND_SEVERITY_SHIFT,
    SCENARIOS,
    Batch,
    draw_from,
)
from simulator.world import KIND, KINDS, Population

# P(severity | valid, category) before actor and scenario shifts: low, medium, high, critical.
SEVERITY_BASE: dict[str, tuple[float, float, float, float]] = {
    "harassment": (0.2, 0.45, 0.28, 0.07),
    "hate_speech": (0.05, 0.25, 0.45, 0.25),
    "threats_of_harm": (0.05, 0.2, 0.4, 0.35),
    "violent_content": (0.05, 0.25, 0.4, 0.3),
    "explicit_content": (0.1, 0.35, 0.4, 0.15),
    "disruptive_auction_behavior": (0.5, 0.38, 0.1, 0.02),
    "spam": (0.65, 0.3, 0.04, 0.01),
    "shipping_delay": (0.7, 0.25, 0.04, 0.01),
    "missing_item": (0.35, 0.45, 0.17, 0.03),
    "wrong_item": (0.45, 0.4, 0.13, 0.02),
    "damaged_item": (0.5, 0.38, 0.1, 0.02),
    "counterfeit": (0.1, 0.35, 0.4, 0.15),
    "misrepresented_item": (0.3, 0.45, 0.2, 0.05),
    "non_delivery_scam": (0.05, 0.3, 0.45, 0.2),
    "payment_fraud": (0.05, 0.3, 0.45, 0.2),
    "shill_bidding": (0.15, 0.45, 0.3, 0.1),
}
SEVERITY_TABLE = np.array([SEVERITY_BASE[c] for c in V.CATEGORIES])
SEVERITY_RANKS = np.array([-1.5, -0.5, 0.5, 1.5])
LOW, MEDIUM, HIGH, CRITICAL = range(4)

# Review takes longer for minor cases; spikes trigger an alert and jump the queue.
REVIEW_HOURS = np.array([60.0, 30.0, 12.0, 4.0])  # by severity of valid reports
REVIEW_HOURS_INVALID = 48.0
REVIEW_SPREAD = 0.9
SPIKE_REVIEW_FACTOR = 0.3
MIN_REVIEW_HOURS = 0.25  # longer than a spike lasts, so a spike is never cut short by its own review

# Violations before the period: yearly rate by kind for accounts that already existed.
PRIOR_VIOLATIONS_PER_YEAR: dict[str, float] = {
    "abusive_streamer": 1.0, "scam_seller": 0.8, "sloppy_shipper": 1.2, "harasser": 1.0, "payment_fraudster": 0.6,
}
NORMAL_PRIOR_PER_YEAR = {True: 0.03, False: 0.02}  # sellers, buyers
PRIOR_YEARS_MAX, PRIOR_COUNT_MAX = 3.0, 6
PRIOR_CATEGORY_MIX: dict[str, dict[str, float]] = {
    **KIND_CATEGORY_MIX,
    "scam_seller": {"counterfeit": 0.35, "misrepresented_item": 0.25, "non_delivery_scam": 0.2, "missing_item": 0.1,
                    "shipping_delay": 0.1},
    "sloppy_shipper": {"shipping_delay": 0.6, "missing_item": 0.15, "wrong_item": 0.15, "damaged_item": 0.1},
    "payment_fraudster": {"payment_fraud": 1.0},
    "normal_seller": {"shipping_delay": 0.5, "harassment": 0.2, "spam": 0.1, "misrepresented_item": 0.2},
    "normal_buyer": {"harassment": 0.5, "spam": 0.3, "disruptive_auction_behavior": 0.2},
}
# Earlier violations count toward the ladder for this long.
VIOLATION_MEMORY_DAYS = 180.0
ACTION = {a: i for i, a in enumerate(V.ACTIONS)}
LOGISTICS = V.FAMILIES.index("logistics")
CASE_DAYS = 7.0  # upheld conduct reports about one account within a week are one case
LOGISTICS_WINDOW_DAYS = 30.0
LOGISTICS_MIN_ISSUES = 2
LOGISTICS_RATE_THRESHOLD = 0.06  # share of a window's orders with an upheld problem
SEVERITY_POINTS = np.array([1, 2, 4, 8])
BAN_POINTS = 20
CRITICAL_BAN_PRIOR_POINTS = 8  # a critical case ends in a ban once the account already has this much on record
MAX_SUSPENSION_DAYS = 30


def severity_probabilities(category: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Category sets the base; a positive shift moves mass toward high and critical."""
    w = SEVERITY_TABLE[category] * np.exp(np.clip(shift, -4, 4)[:, None] * SEVERITY_RANKS)
    return w / w.sum(axis=1, keepdims=True)


def label(rng: np.random.Generator, reports: Batch) -> Batch:
    """The reports with their truth, drawn labels and review close time.

    valid ~ Bernoulli(p_valid); severity and fraud are drawn only among valid
    reports, so fraud implies valid and p_fraud is the marginal probability.
    """
    n = reports["t"].size
    p_valid = np.clip(reports["p_valid"], 0.0, 1.0)
    p_severity = severity_probabilities(reports["category"], reports["sev_shift"])
    valid = rng.random(n) < p_valid
    drawn = np.minimum((rng.random(n)[:, None] > np.cumsum(p_severity, axis=1)).sum(axis=1), CRITICAL)
    severity = np.where(valid, drawn, -1).astype(np.int8)
    fraud = valid & (rng.random(n) < reports["fraud_given_valid"])
    resolved = reports["t"] + review_delay(rng, valid, severity, reports["scenario"])
    return {**reports, "p_valid": p_valid, "p_severity": p_severity, "p_fraud": p_valid * reports["fraud_given_valid"],
            "valid": valid, "severity": severity, "fraud": fraud, "resolved": resolved}


def review_delay(rng: np.random.Generator, valid: np.ndarray, severity: np.ndarray, scenario: np.ndarray) -> np.ndarray:
    """Days from filing to the closed review."""
    hours = np.where(valid, REVIEW_HOURS[np.maximum(severity, 0)], REVIEW_HOURS_INVALID)
    hours = hours * np.where(scenario == SCENARIOS.index("spike"), SPIKE_REVIEW_FACTOR, 1.0)
    hours = hours * rng.lognormal(0, REVIEW_SPREAD, scenario.size)
    return np.maximum(hours, MIN_REVIEW_HOURS) / 24


# ----------------------------------------------------------------------------------------------
# Violations


@dataclass(frozen=True)
class Violations:
    account: np.ndarray
    occurred: np.ndarray
    decided: np.ndarray
    category: np.ndarray
    severity: np.ndarray

    FIELDS = ("account", "occurred", "decided", "category", "severity")

    @property
    def size(self) -> int:
        return self.account.size

    def subset(self, keep: np.ndarray) -> "Violations":
        return Violations(*(getattr(self, f)[keep] for f in self.FIELDS))


def _cases(key: np.ndarray, subject: np.ndarray, t: np.ndarray, category: np.ndarray, severity: np.ndarray,
           resolved: np.ndarray, decide_on_last: bool) -> tuple[Violations, np.ndarray]:
    """Collapse reports sharing a key into one violation: the most severe report names it.

    Returns the violations and how many reports each one gathers.
    """
    if key.size == 0:
        return Violations(subject, t, resolved, category, severity), np.zeros(0, np.int64)
    order = np.lexsort((t, -severity, key))
    key = key[order]
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    head = order[first]
    decide = np.maximum.reduceat if decide_on_last else np.minimum.reduceat
    v = Violations(subject[head], np.minimum.reduceat(t[order], first), decide(resolved[order], first),
                   category[head], severity[head])
    return v, np.diff(np.r_[first, key.size])


def confirmed_incidents(reports: Batch, days: int, order_seller: np.ndarray, order_created: np.ndarray) -> Violations:
    """Violations from reviews closed in the period.

    Behaviour and fraud: one violation per case, i.e. per spike or brigade, else
    per subject, family and week. Logistics is judged on rates, as a fulfilment
    team does: one violation per seller and 30-day window, only when enough of
    that window's orders had an upheld problem.
    """
    keep = reports["valid"] & (reports["resolved"] <= days)
    subject, t, category, incident, severity, resolved = (
        reports[k][keep] for k in ("subject", "t", "category", "incident", "severity", "resolved"))
    family = FAMILY_OF_CAT[category]
    logistics = family == LOGISTICS

    conduct = ~logistics
    week = np.floor(t / CASE_DAYS).astype(np.int64)
    case_key = np.where(incident >= 0, -(incident + 1), (subject * len(V.FAMILIES) + family) * 100_000 + week)
    cases, _ = _cases(case_key[conduct], subject[conduct], t[conduct], category[conduct], severity[conduct],
                      resolved[conduct], False)

    window = np.floor(t[logistics] / LOGISTICS_WINDOW_DAYS).astype(np.int64)
    windows, issues = _cases(subject[logistics] * 100_000 + window, subject[logistics], t[logistics], category[logistics],
                             severity[logistics], resolved[logistics], True)
    sold = _orders_in_window(order_seller, order_created, windows.account,
                             np.floor(windows.occurred / LOGISTICS_WINDOW_DAYS).astype(np.int64))
    over = (issues >= LOGISTICS_MIN_ISSUES) & (issues >= LOGISTICS_RATE_THRESHOLD * sold)
    return merge(cases, windows.subset(over))


def _orders_in_window(order_seller: np.ndarray, order_created: np.ndarray, seller: np.ndarray,
                      window: np.ndarray) -> np.ndarray:
    """How many orders each seller took in each 30-day window."""
    order_window = np.floor(order_created / LOGISTICS_WINDOW_DAYS).astype(np.int64)
    keys, counts = np.unique(order_seller * 100_000 + order_window, return_counts=True)
    wanted = seller * 100_000 + window
    pos = np.clip(np.searchsorted(keys, wanted), 0, max(keys.size - 1, 0))
    return np.where((keys.size > 0) & (keys[pos] == wanted), counts[pos] if keys.size else 0, 0)


def prior_violations(rng: np.random.Generator, pop: Population) -> Violations:
    """Violations decided before the period, so the earliest reports already have a history to read."""
    role_rate = np.where(pop.seller, NORMAL_PRIOR_PER_YEAR[True], NORMAL_PRIOR_PER_YEAR[False])
    rate = np.select([pop.kind == KIND[k] for k in PRIOR_VIOLATIONS_PER_YEAR], list(PRIOR_VIOLATIONS_PER_YEAR.values()),
                     np.where(pop.kind == KIND["normal"], role_rate, 0.0))
    years = np.clip(-pop.created - 1, 0, PRIOR_YEARS_MAX * 365) / 365
    account = np.repeat(np.arange(pop.size), np.minimum(rng.poisson(rate * years), PRIOR_COUNT_MAX))
    n = account.size
    lo = np.maximum(pop.created[account] + 1, -PRIOR_YEARS_MAX * 365)
    decided = lo + rng.random(n) * (-0.01 - lo)
    occurred = np.maximum(decided - rng.uniform(0.1, 4, n), pop.created[account])
    category = np.zeros(n, np.int64)
    kind = pop.kind[account]
    groups = {name: kind == KIND[name] for name in PRIOR_CATEGORY_MIX if name in KIND}
    groups["normal_seller"] = (kind == KIND["normal"]) & pop.seller[account]
    groups["normal_buyer"] = (kind == KIND["normal"]) & ~pop.seller[account]
    for name, mask in groups.items():
        category[mask] = draw_from(rng, int(mask.sum()), PRIOR_CATEGORY_MIX[name], CAT)
    shift = np.array([KIND_SEVERITY_SHIFT[k] for k in KINDS])[kind] + pop.severity_shift[account]
    p_sev = severity_probabilities(category, shift)
    severity = np.minimum((rng.random(n)[:, None] > np.cumsum(p_sev, axis=1)).sum(axis=1), CRITICAL).astype(np.int8)
    return Violations(account, occurred, decided, category, severity)


def merge(*parts: Violations) -> Violations:
    """All violations in decision order (ties broken by account), the order ids are given in."""
    cols = {f: np.concatenate([getattr(p, f) for p in parts]) for f in Violations.FIELDS}
    order = np.lexsort((cols["account"], cols["decided"]))
    return Violations(**{k: v[order] for k, v in cols.items()})


def recent_sum(account: np.ndarray, decided: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Sum of `weight` over the same account's earlier violations decided within the memory window."""
    key = account * 20_000.0 + decided + 5_000.0  # one disjoint span of days per account
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    lo = np.searchsorted(sorted_key, sorted_key - VIOLATION_MEMORY_DAYS, side="left")
    cum = np.concatenate([[0], np.cumsum(weight[order])])
    out = np.empty(account.size, dtype=cum.dtype)
    out[order] = cum[np.arange(account.size)] - cum[lo]
    return out


def ladder(v: Violations) -> tuple[np.ndarray, np.ndarray]:
    """(action code, days): proportional to severity, cumulative over the account's recent violations.

    Conduct (behaviour and fraud) collects severity points; a critical case after
    earlier trouble, or enough points, ends in a ban. Logistics climbs from a
    warning through payout and commission penalties to suspensions.
    """
    sev = v.severity.astype(np.int64)
    logistics = FAMILY_OF_CAT[v.category] == LOGISTICS
    points = np.where(logistics, 0, SEVERITY_POINTS[sev])
    prior_points = recent_sum(v.account, v.decided, points)
    total = prior_points + points
    prior_logistics = recent_sum(v.account, v.decided, logistics.astype(np.int64))
    a = ACTION
    conduct_rules = [
        ((sev == CRITICAL) & (prior_points >= CRITICAL_BAN_PRIOR_POINTS), a["ban"], 0), (total >= BAN_POINTS, a["ban"], 0),
        (total >= 12, a["suspension"], 30), (total >= 7, a["suspension"], 7), (total >= 4, a["suspension"], 2),
        (v.category == CAT["spam"], a["feature_restriction"], 7),
    ]
    logistics_rules = [
        ((sev == CRITICAL) & (prior_logistics >= 2), a["ban"], 0), (prior_logistics >= 4, a["suspension"], 30),
        (prior_logistics == 3, a["suspension"], 7), (prior_logistics == 2, a["increased_commission"], 30),
        ((prior_logistics == 1) & (sev >= MEDIUM), a["lose_early_payout"], 30),
        (prior_logistics == 1, a["lose_early_payout"], 14),
        (sev >= HIGH, a["lose_early_payout"], 7),
    ]

    def pick(rules: list) -> tuple[np.ndarray, np.ndarray]:
        conds = [np.broadcast_to(c, sev.shape) for c, _, _ in rules]
        return np.select(conds, [x for _, x, _ in rules], a["warning"]), np.select(conds, [d for _, _, d in rules], 0)

    c_action, c_days = pick(conduct_rules)
    l_action, l_days = pick(logistics_rules)
    return np.where(logistics, l_action, c_action), np.where(logistics, l_days, c_days).astype(np.int64)


def enforce(v: Violations, n_accounts: int,
            last_active: np.ndarray | None = None) -> tuple[Violations, np.ndarray, np.ndarray, np.ndarray]:
    """Apply the ladder; a ban closes the account, so nothing is enforced on it afterwards.

    With `last_active`, a ban is only kept if the account does nothing after it
    (otherwise it becomes the longest suspension), so the tables never show a
    banned account trading or being reported. Returns the kept violations, their
    actions and days, and each account's ban time (inf if never banned).
    """
    action, days = ladder(v)
    if last_active is not None:
        early = (action == ACTION["ban"]) & (v.decided < last_active[v.account])
        action, days = np.where(early, ACTION["suspension"], action), np.where(early, MAX_SUSPENSION_DAYS, days)
    banned = action == ACTION["ban"]
    ban_time = np.full(n_accounts, np.inf)
    np.minimum.at(ban_time, v.account[banned], v.decided[banned])
    keep = v.decided <= ban_time[v.account]
    return v.subset(keep), action[keep], days[keep], ban_time
