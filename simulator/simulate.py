"""A simulated live-shopping marketplace: every contract table from one seeded generator.

The data has the latent structure a real marketplace has: hidden bad actors
who keep misbehaving until they are banned (and then come back with a fresh
account), sellers who chronically ship late, credible and habitual reporters,
report spikes during shows, brigades, retaliation after disputes, automated
monitors, and labels that arrive late. The point is that account history
predicts the labels far better than any single report field, and
truth_reports / truth_orders hold the probabilities the labels were drawn
from, so a model can be scored against the best achievable.

Stages live in small modules: `simulate_world` (accounts, orders),
`simulate_reports` (scenarios), `simulate_review` (labels, enforcement),
`simulate_text` (descriptions). This module runs them and builds the tables.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from features import vocabulary as V
from features.contract import TABLES
from simulator.reports import (
    SCENARIOS,
    Batch,
    concat,
    make_reports,
    make_world,
    refill,
    scenario_counts,
    subset,
)
from simulator.review import (
    Violations,
    confirmed_incidents,
    enforce,
    label,
    merge,
    prior_violations,
)
from simulator.text import describe
from simulator.world import Clock, Market, Population, make_market, make_population

SIMULATION_STEPS: tuple[str, ...] = (
    "accounts", "orders", "reports", "bans", "descriptions", "outcomes", "enforcements", "tables",
)
ACCOUNTS_PER_REPORT = 0.25
MIN_ACCOUNTS = 500
ORDERS_PER_REPORT = 2
ORDER_SLACK = 1.1  # orders of accounts banned along the way are removed again
MAX_SETTLE_ROUNDS = 8
BRIGADE_REPORTS_PER_GROUP = 60
MAX_DAYS = 10_000
ID_DIGITS = 7
SHOW_SPAN = 16_384  # show code = host * SHOW_SPAN + day
US_PER_DAY = 86_400_000_000


def simulate(n_reports: int, seed: int = 7, days: int = 365, start: str = "2025-01-01",
             on_step: Callable[[str], None] | None = None) -> dict[str, pd.DataFrame]:
    """Simulate `days` of marketplace activity starting at `start` with exactly n_reports reports.

    Deterministic in (n_reports, seed, days, start). on_step is called with each
    name in SIMULATION_STEPS as that stage finishes, for progress bars.
    """
    if n_reports < 1:
        raise ValueError("n_reports must be at least 1")
    if not 1 <= days < MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS - 1}")
    step = on_step or (lambda _name: None)
    rng = np.random.default_rng(seed)
    origin = _origin(start)
    clock = Clock.build(days, origin)

    n_accounts = max(MIN_ACCOUNTS, int(n_reports * ACCOUNTS_PER_REPORT))
    n_brigades = round(scenario_counts(n_reports)["brigading"] / BRIGADE_REPORTS_PER_GROUP)
    pop = make_population(rng, n_accounts, n_brigades, days)
    prior = prior_violations(rng, pop)
    step("accounts")
    market = make_market(rng, pop, clock, round(ORDERS_PER_REPORT * ORDER_SLACK * n_reports))
    step("orders")
    reports = label(rng, make_reports(make_world(rng, pop, market, clock), scenario_counts(n_reports)))
    step("reports")
    market, reports, violations = _settle(rng, pop, clock, prior, market, reports)
    step("bans")

    to_ts = lambda d: _timestamps(d, origin)  # noqa: E731
    account_ids = _ids("a", np.arange(pop.size))
    order_ids = _ids("o", np.arange(market.size))
    report_ids = _ids("r", np.arange(n_reports))
    report_order_ids = _take(order_ids, reports["order"])
    pile_on = np.isin(reports["scenario"], [SCENARIOS.index("brigading"), SCENARIOS.index("retaliatory")])
    description = describe(rng, reports["category"], reports["channel"], reports["rtype"], reports["p_valid"],
                           reports["p_severity"][:, 2:].sum(axis=1), pile_on, reports["incident"], report_order_ids,
                           _hours_late(market, reports))
    step("descriptions")
    outcomes = _outcomes(reports, report_ids, days, to_ts)
    step("outcomes")
    enforced = enforce(violations, pop.size, _last_active(pop.size, market, reports))
    step("enforcements")
    shows = _show_ids(market, reports)
    tables = {
        "accounts": _accounts(pop, account_ids, to_ts),
        "orders": _orders(market, account_ids, order_ids, shows[0], days, to_ts),
        "reports": _reports(reports, account_ids, report_ids, report_order_ids, shows[1], description, to_ts),
        "enforcements": _enforcements(*enforced[:3], account_ids, to_ts),
        "outcomes": outcomes,
        "truth_reports": _truth_reports(reports, report_ids),
        "truth_orders": _frame("truth_orders", order_id=order_ids, p_fraud=pa.array(market.p_fraud)),
    }
    step("tables")
    return tables


def _settle(rng: np.random.Generator, pop: Population, clock: Clock, prior: Violations, market: Market,
            reports: Batch) -> tuple[Market, Batch, Violations]:
    """Let enforcement act on the world: a banned account does nothing after its ban.

    Activity after each account's first ban is removed (its orders, the reports
    about it or by it, reports about removed orders) and the missing reports are
    drawn again, per scenario, among accounts still open. New reports can bring
    new bans, so this repeats until nothing changes (a few rounds); whatever is
    left is handled by `enforce`, which only keeps a ban after the last activity.
    """
    n_reports = reports["t"].size
    target = scenario_counts(n_reports)
    until = pop.until.copy()
    for _ in range(MAX_SETTLE_ROUNDS):
        violations = merge(prior, confirmed_incidents(reports, clock.days, market.seller, market.created))
        ban = enforce(violations, pop.size)[3]
        gone_orders = (ban[market.buyer] < market.created) | (ban[market.seller] < market.created)
        reporter, order = np.maximum(reports["reporter"], 0), np.maximum(reports["order"], 0)
        gone = ((ban[reports["subject"]] < reports["t"]) | ((reports["reporter"] >= 0) & (ban[reporter] < reports["t"]))
                | ((reports["order"] >= 0) & gone_orders[order]))
        if not gone.any() and not gone_orders.any():
            break
        until = np.minimum(until, ban)
        market, remap = market.subset(~gone_orders)
        reports = subset(reports, ~gone)
        reports["order"] = np.where(reports["order"] >= 0, remap[np.maximum(reports["order"], 0)], -1)
        used = np.zeros(market.size, bool)
        used[reports["order"][reports["order"] >= 0]] = True
        need = refill(target, reports["scenario"], n_reports - reports["t"].size)
        world = make_world(rng, pop, market, clock, until, used)
        extra = label(rng, make_reports(world, need, first_incident=int(reports["incident"].max(initial=-1)) + 1))
        reports = concat([reports, extra])
        reports = subset(reports, np.argsort(reports["t"], kind="stable"))
    violations = merge(prior, confirmed_incidents(reports, clock.days, market.seller, market.created))
    return market, reports, violations


# ----------------------------------------------------------------------------------------------
# Columns


def _origin(start: str) -> np.datetime64:
    ts = pd.Timestamp(start)
    ts = ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
    return np.datetime64(ts.to_datetime64(), "us")


def _last_active(n_accounts: int, market: Market, reports: Batch) -> np.ndarray:
    """When each account last traded, reported or was reported (-inf if never)."""
    last = np.full(n_accounts, -np.inf)
    np.maximum.at(last, market.buyer, market.created)
    np.maximum.at(last, market.seller, market.created)
    np.maximum.at(last, reports["subject"], reports["t"])
    user = reports["reporter"] >= 0
    np.maximum.at(last, reports["reporter"][user], reports["t"][user])
    return last


def _hours_late(market: Market, reports: Batch) -> np.ndarray:
    """Whole hours between each linked order's ship-by deadline and the report (0 when not late)."""
    ship_by = market.ship_by[np.maximum(reports["order"], 0)]
    return np.where(reports["order"] >= 0, np.maximum(np.ceil((reports["t"] - ship_by) * 24), 0), 0).astype(np.int64)


def _ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    """Zero-padded ids such as a0000123, built as bytes: formatting millions of ids one by one is slow."""
    width = max(ID_DIGITS, len(str(int(numbers.max(initial=0)))))
    buf = np.empty((numbers.size, width + 1), np.uint8)
    buf[:, 0] = ord(prefix)
    x = numbers.astype(np.int64)
    for k in range(width, 0, -1):
        buf[:, k] = 48 + x % 10
        x = x // 10
    return pa.array(buf.view(f"S{width + 1}").ravel()).cast(pa.string())


def _take(values: pa.Array, idx: np.ndarray) -> pa.Array:
    """values[idx], null where idx is negative."""
    return values.take(pa.array(np.maximum(idx, 0), mask=idx < 0))


def _names(names: tuple[str, ...], codes: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    idx = pa.array(codes.astype(np.int64), mask=missing)
    return pa.array(names, pa.string()).take(idx)


def _timestamps(days: np.ndarray, origin: np.datetime64) -> pa.Array:
    """Days since the origin to UTC microseconds; nan becomes null. Flooring keeps every time order intact."""
    missing = np.isnan(days)
    us = origin.astype(np.int64) + np.floor(np.where(missing, 0.0, days) * US_PER_DAY).astype(np.int64)
    return pa.array(us, mask=missing).cast(pa.timestamp("us", tz="UTC"))


def _show_ids(market: Market, reports: Batch) -> tuple[pa.Array, pa.Array]:
    """A show is one seller on one day; order and report show ids share one numbering."""
    order_code = np.where(market.has_show, market.seller * SHOW_SPAN + np.floor(market.created).astype(np.int64), -1)
    host = reports["show_host"]
    report_code = np.where(host >= 0, host * SHOW_SPAN + np.floor(reports["t"]).astype(np.int64), -1)
    codes = np.concatenate([order_code, report_code])
    unique, rank = np.unique(codes, return_inverse=True)
    rank = rank - (unique[0] < 0)  # the -1 code is not a show
    ids = _ids("s", np.arange(max(unique.size, 1)))
    rank = np.where(codes < 0, -1, rank)
    return _take(ids, rank[: market.size]), _take(ids, rank[market.size:])


def _frame(name: str, **columns: pa.Array) -> pd.DataFrame:
    """The contract table, its columns in contract order and nothing else."""
    names = TABLES[name].column_names
    if set(columns) != set(names):
        raise AssertionError(f"{name}: columns {sorted(columns)} differ from the contract")
    return pa.table({c: columns[c] for c in names}).to_pandas()


def _accounts(pop: Population, account_ids: pa.Array, to_ts: Callable) -> pd.DataFrame:
    return _frame("accounts", account_id=account_ids, created_at=to_ts(pop.created),
                  role=_names(V.ROLES, np.where(pop.seller, V.ROLES.index("seller"), V.ROLES.index("buyer"))),
                  verified=pa.array(pop.verified))


def _orders(m: Market, account_ids: pa.Array, order_ids: pa.Array, show_ids: pa.Array, days: int,
            to_ts: Callable) -> pd.DataFrame:
    """Only what is known at the end of the period: later shipments, refunds and chargebacks are not in yet."""
    def by_end(t: np.ndarray) -> np.ndarray:
        return np.where(t <= days, t, np.nan)

    shipped = by_end(m.shipped)
    delivered = np.where(np.isnan(shipped), np.nan, by_end(m.delivered))
    cancelled, refunded, fraud_known = by_end(m.cancelled), by_end(m.refunded), by_end(m.fraud_known)
    return _frame(
        "orders", order_id=order_ids, buyer_id=account_ids.take(pa.array(m.buyer)),
        seller_id=account_ids.take(pa.array(m.seller)), show_id=show_ids, amount=pa.array(m.amount),
        created_at=to_ts(m.created), ship_by=to_ts(m.ship_by),
        shipped_at=to_ts(shipped), delivered_at=to_ts(delivered),
        cancelled=pa.array(~np.isnan(cancelled)), cancelled_at=to_ts(cancelled),
        refunded=pa.array(~np.isnan(refunded)), refunded_at=to_ts(refunded),
        fraud=pa.array(~np.isnan(fraud_known)), fraud_known_at=to_ts(fraud_known),
    )


def _reports(r: Batch, account_ids: pa.Array, report_ids: pa.Array, order_ids: pa.Array,
             show_ids: pa.Array, description: pa.Array, to_ts: Callable) -> pd.DataFrame:
    return _frame(
        "reports", report_id=report_ids, created_at=to_ts(r["t"]), reporter_id=_take(account_ids, r["reporter"]),
        reporter_type=_names(V.REPORTER_TYPES, r["rtype"]), channel=_names(V.CHANNELS, r["channel"]),
        subject_id=account_ids.take(pa.array(r["subject"])), show_id=show_ids, order_id=order_ids,
        category=_names(V.CATEGORIES, r["category"]), description=description,
    )


def _enforcements(v: Violations, action: np.ndarray, action_days: np.ndarray, account_ids: pa.Array,
                  to_ts: Callable) -> pd.DataFrame:
    family = np.array([V.FAMILIES.index(V.CATEGORY_FAMILY[c]) for c in V.CATEGORIES])[v.category]
    return _frame(
        "enforcements", violation_id=_ids("v", np.arange(v.size)), account_id=account_ids.take(pa.array(v.account)),
        occurred_at=to_ts(v.occurred), decided_at=to_ts(v.decided), family=_names(V.FAMILIES, family),
        category=_names(V.CATEGORIES, v.category), severity=_names(V.SEVERITIES, v.severity),
        action=_names(V.ACTIONS, action), action_days=pa.array(action_days),
    )


def _outcomes(r: Batch, report_ids: pa.Array, days: int, to_ts: Callable) -> pd.DataFrame:
    """Reviews closed by the end of the period; the rest are still open (the label delay)."""
    done = np.flatnonzero(r["resolved"] <= days)
    severity = r["severity"][done]
    return _frame(
        "outcomes", report_id=report_ids.take(pa.array(done)), valid=pa.array(r["valid"][done]),
        severity=_names(V.SEVERITIES, np.maximum(severity, 0), missing=severity < 0),
        fraud_confirmed=pa.array(r["fraud"][done]), resolved_at=to_ts(r["resolved"][done]),
    )


def _truth_reports(r: Batch, report_ids: pa.Array) -> pd.DataFrame:
    p = r["p_severity"]
    return _frame(
        "truth_reports", report_id=report_ids, p_valid=pa.array(r["p_valid"]),
        p_severity_low=pa.array(p[:, 0]), p_severity_medium=pa.array(p[:, 1]),
        p_severity_high=pa.array(p[:, 2]), p_severity_critical=pa.array(p[:, 3]),
        p_fraud=pa.array(r["p_fraud"]), scenario=_names(SCENARIOS, r["scenario"]),
    )
