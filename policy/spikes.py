"""Report spikes: many reports about one account (or one show) within minutes, and whether it is brigading.

A pure function of a frame of reports and a `SpikeConfig`: no clock, no I/O,
the same input in any row order gives the same alerts. The work is vectorised
(one sort by (group, time) and numpy); Python loops run only over the bursts
found, so a million reports take a few seconds.

The rule, for each subject and separately for each show:
1. A window is the reports of the group created in [t, t + window_minutes),
   where t is the time of one of them.
2. A window qualifies when it holds >= min_reports reports and
   >= min_distinct_reporters distinct reporters. Reports without a reporter
   account (automated detection, the rules engine) count as reports, never as
   reporters.
3. An alert is the union of qualifying windows that share a report: every
   report of the group lying in a qualifying window. A burst that keeps
   qualifying for longer than the window stays one alert, and a busy
   subject's ordinary reports before or after the burst stay out of it.
   Its start is stable as a burst grows: later reports never make an earlier
   window qualify once a later one has.
4. A show alert whose reports are all but fewer than min_reports already in
   subject alerts is dropped (what is left would not be a spike by itself);
   each subject alert records the show most of its reports name.

The verdict looks at the distinct reporters of the alert, each as of their
first report in it. They are suspicious when new (account younger than
new_account_days) or of low credibility (reporter_accuracy below
low_credibility with at least one reviewed report), and connected when their
account was created within connected_hours of at least
min(connected_min_others, reporters - 1) other reporters of the alert. It is
brigading when either share reaches brigading_share, an incident otherwise;
the reasons state both figures either way.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from policy.sections import from_mapping

REQUIRED_COLUMNS = (
    "report_id", "created_at", "subject_id", "show_id", "reporter_id", "reporter_type", "category",
    "reporter_age_days", "reporter_accuracy", "reporter_past_resolved", "reporter_created_at",
)
SCOPES = ("subject", "show")
VERDICTS = ("incident", "brigading")
US_PER_MINUTE = 60_000_000
US_PER_HOUR = 60 * US_PER_MINUTE
NAT = np.iinfo(np.int64).min
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
PREFIX_REPORTS = 2  # distinct reporters are first counted among this many times min_reports of a window's reports
PAIRS_PER_CHUNK = 1 << 22  # (window, report) pairs expanded at once when counting distinct reporters


@dataclass(frozen=True)
class SpikeConfig:
    """Thresholds of the spike detector; the policy file sets them through `from_dict`."""

    window_minutes: int = 10
    min_reports: int = 20
    min_distinct_reporters: int = 10
    new_account_days: float = 30.0  # reporter accounts younger than this are 'new'
    low_credibility: float = 0.35  # reporter_accuracy below this (with >= 1 reviewed report) is low credibility
    connected_hours: float = 24.0  # reporter accounts created within this of each other are 'connected'
    connected_min_others: int = 5  # ... of at least min(this, reporters - 1) other reporters of the alert
    brigading_share: float = 0.6  # share of suspicious or connected reporters from which it is brigading

    def __post_init__(self) -> None:
        for name in ("window_minutes", "min_reports", "min_distinct_reporters", "connected_min_others"):
            if getattr(self, name) < 1:
                raise ValueError(f"spike config: {name} must be at least 1, got {getattr(self, name)}")
        for name in ("new_account_days", "connected_hours"):
            if getattr(self, name) < 0:
                raise ValueError(f"spike config: {name} must not be negative, got {getattr(self, name)}")
        for name in ("low_credibility", "brigading_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"spike config: {name} must be between 0 and 1, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, d: Mapping) -> "SpikeConfig":
        """A config from the policy file's section; unknown keys are an error, missing ones keep defaults."""
        return from_mapping(cls, d, "spike config")


@dataclass(frozen=True)
class Alert:
    """One burst of reports about one subject (or in one show), with its verdict and the figures behind it."""

    key: str  # "<scope>:<subject or show id>:<window_start iso>", stable as the burst grows
    scope: str  # "subject" | "show"
    subject_id: str  # the reported account; for a show, the account most reported in it
    show_id: str | None  # for a subject, the show most of its reports name (None if none)
    window_start: datetime  # first report of the alert
    window_end: datetime  # last report of the alert
    report_ids: tuple[str, ...]  # sorted
    count: int
    distinct_reporters: int
    verdict: str  # "incident" | "brigading"
    reasons: tuple[str, ...]
    share_new: float
    share_low_credibility: float
    share_connected: float


def detect_spikes(reports: pd.DataFrame, config: SpikeConfig, now: datetime | None = None) -> list[Alert]:
    """Alerts for report spikes in `reports`, ordered by (window_start, key).

    reports: one row per report with REQUIRED_COLUMNS (times tz-aware UTC;
    show_id, reporter_id, reporter_accuracy and reporter_created_at may be missing).
    now: when given, only reports created before it are considered, so a
    replay as of a past time sees what was known then.
    Returns: one Alert per burst (see the module docstring for the rule).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in reports.columns]
    if missing:
        raise ValueError(f"reports lack column(s): {', '.join(missing)}")
    t = _micros(reports["created_at"], "created_at")
    if (t == NAT).any() or reports["subject_id"].isna().any():
        raise ValueError("reports.created_at and reports.subject_id must not have missing values")
    keep = np.ones(len(t), bool) if now is None else t < _micros(pd.Series([now]), "now")[0]
    codes = {name: pd.factorize(reports[name]) for name in ("subject_id", "show_id", "category")}
    reporter = pd.factorize(reports["reporter_id"])[0]
    window = config.window_minutes * US_PER_MINUTE

    subject_bursts = _bursts(np.where(keep, codes["subject_id"][0], -1), t, reporter, window, config)
    show_bursts = _bursts(np.where(keep, codes["show_id"][0], -1), t, reporter, window, config)
    in_subject = np.zeros(len(t), bool)
    for rows in subject_bursts:
        in_subject[rows] = True
    show_bursts = [rows for rows in show_bursts if (~in_subject[rows]).sum() >= config.min_reports]

    bursts = subject_bursts + show_bursts
    scopes = ["subject"] * len(subject_bursts) + ["show"] * len(show_bursts)
    facts = _reporter_facts(bursts, reports, reporter, config)
    quotes = _Quotes.of(reports, bursts, t, codes)
    alerts = [_alert(scope, rows, f, ids, quotes, config)
              for scope, rows, f, ids in zip(scopes, bursts, facts, quotes.report_ids)]
    return sorted(alerts, key=lambda a: (a.window_start, a.key))


# ----------------------------------------------------------------------------------------------
# Finding bursts


def _micros(values: pd.Series, name: str) -> np.ndarray:
    """tz-aware timestamps as int64 microseconds since the epoch (NAT where missing)."""
    values = pd.Series(values)
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        if values.isna().all():
            return np.full(len(values), NAT, np.int64)
        raise ValueError(f"{name} must be tz-aware timestamps, got {values.dtype}")
    return np.asarray(values.dt.tz_convert("UTC").dt.as_unit("us").array.asi8, dtype=np.int64)


def _pack(keys: np.ndarray, values: np.ndarray, lo: int, hi: int) -> np.ndarray | None:
    """One int64 per (key, value) that sorts like the pair, or None when it would overflow.

    keys >= 0 and lo <= values <= hi. Sorting and searching one int64 column
    is several times faster than np.lexsort on two.
    """
    stride = hi - lo + 1
    if (int(keys.max(initial=0)) + 1) * stride >= 2**62:
        return None
    return keys.astype(np.int64) * stride + (values - lo)


def _sort_order(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Stable order sorting rows by (key, value)."""
    if len(keys) == 0:
        return np.zeros(0, np.int64)
    packed = _pack(keys, values, int(values.min()), int(values.max()))
    return np.lexsort((values, keys)) if packed is None else np.argsort(packed, kind="stable")


def _count_before(keys: np.ndarray, values: np.ndarray, query_keys: np.ndarray, query_values: np.ndarray,
                  inclusive: bool) -> np.ndarray:
    """For each query, how many (key, value) pairs sort before (query_key, query_value).

    `keys`/`values` must be sorted by (key, value): this is np.searchsorted on
    a two-column key; inclusive also counts pairs equal to the query. When the
    pair does not pack into one int64, one lexsort of pairs and queries
    together gives the same answer.
    """
    n, m = len(keys), len(query_keys)
    if n == 0 or m == 0:
        return np.zeros(m, np.int64)
    lo = min(int(values.min()), int(query_values.min()))
    hi = max(int(values.max()), int(query_values.max()))
    packed = _pack(np.concatenate([keys, query_keys]), np.concatenate([values, query_values]), lo, hi)
    if packed is not None:
        return np.searchsorted(packed[:n], packed[n:], side="right" if inclusive else "left")
    is_query = np.concatenate([np.zeros(n, np.int8), np.ones(m, np.int8)])
    tie = is_query if inclusive else 1 - is_query  # on ties, the side that sorts first
    merged = np.lexsort((tie, np.concatenate([values, query_values]), np.concatenate([keys, query_keys])))
    position = np.empty(n + m, np.int64)
    position[merged] = np.arange(n + m)
    queries_before = np.empty(m, np.int64)
    queries_before[merged[merged >= n] - n] = np.arange(m)
    return position[n:] - queries_before


def _previous_same_reporter(group: np.ndarray, reporter: np.ndarray) -> np.ndarray:
    """Per position of a (group, time)-sorted array: the previous position with the same group and reporter.

    -1 when there is none; positions without a reporter get n, so they are
    never the first of a reporter in any window.
    """
    n = len(group)
    order = _sort_order(group, reporter)  # stable: time order within each (group, reporter)
    g, r = group[order], reporter[order]
    same = np.zeros(n, bool)
    same[1:] = (g[1:] == g[:-1]) & (r[1:] == r[:-1])
    prev_sorted = np.where(same, np.concatenate(([-1], order[:-1])), -1)
    prev = np.empty(n, np.int64)
    prev[order] = np.where(r < 0, n, prev_sorted)
    return prev


def _distinct_in_windows(prev: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Distinct reporters in each window [start, end) of positions: reports whose reporter is not seen earlier in it.

    The work is the total size of the windows asked about (only windows that
    already hold min_reports), expanded in bounded chunks.
    """
    out = np.zeros(len(starts), np.int64)
    sizes = ends - starts
    cum = np.cumsum(sizes)
    first = 0
    while first < len(starts):
        done = cum[first - 1] if first else 0
        last = max(int(np.searchsorted(cum, done + PAIRS_PER_CHUNK, side="right")), first + 1)
        s, z = starts[first:last], sizes[first:last]
        window = np.repeat(np.arange(last - first), z)
        offset = np.arange(int(z.sum())) - np.repeat(np.cumsum(z) - z, z)
        out[first:last] = np.bincount(window, weights=prev[s[window] + offset] < s[window], minlength=last - first)
        first = last
    return out


def _bursts(group: np.ndarray, t: np.ndarray, reporter: np.ndarray, window: int,
            config: SpikeConfig) -> list[np.ndarray]:
    """The row numbers of each burst of one scope, in time order.

    group: code per row, -1 for rows outside the scope (e.g. reports without a show).
    """
    inside = group >= 0
    size = np.bincount(group[inside], minlength=1)
    rows = np.flatnonzero(inside)
    rows = rows[size[group[rows]] >= config.min_reports]  # groups too small to ever qualify
    order = rows[_sort_order(group[rows], t[rows])]
    g, ts = group[order], t[order]
    ends = _count_before(g, ts, g, ts + window, inclusive=False)
    starts = np.arange(len(order))
    busy = ends - starts >= config.min_reports
    starts, ends = starts[busy], ends[busy]
    prev = _previous_same_reporter(g, reporter[order])
    # Enough distinct reporters among a window's first reports settles it; only the rest are counted in full,
    # so a subject reported every few seconds costs a few dozen steps per window, not thousands.
    head = np.minimum(ends, starts + PREFIX_REPORTS * config.min_reports)
    distinct = _distinct_in_windows(prev, starts, head)
    unsure = (distinct < config.min_distinct_reporters) & (head < ends)
    distinct[unsure] = _distinct_in_windows(prev, starts[unsure], ends[unsure])
    ok = distinct >= config.min_distinct_reporters
    starts, ends = starts[ok], ends[ok]
    # Qualifying windows are sorted by start and their ends never decrease within a group, so a window
    # opens a new burst exactly when it shares no report with the one before.
    new = np.ones(len(starts), bool)
    new[1:] = starts[1:] >= ends[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, len(starts) - 1)[: len(first)]
    return [order[a:b] for a, b in zip(starts[first], ends[last])]


# ----------------------------------------------------------------------------------------------
# Who reported


@dataclass(frozen=True)
class _Facts:
    reporters: int
    automated: int
    new: int
    low_credibility: int
    connected: int
    suspicious: int
    connected_needs: int


def _reporter_facts(bursts: list[np.ndarray], reports: pd.DataFrame, reporter: np.ndarray,
                    config: SpikeConfig) -> list[_Facts]:
    """Counts of new, low-credibility and connected distinct reporters per burst, vectorised over all bursts."""
    if not bursts:
        return []
    sizes = np.array([len(b) for b in bursts])
    rows = np.concatenate(bursts)  # each burst's rows in time order
    label = np.repeat(np.arange(len(bursts)), sizes)
    user = reporter[rows] >= 0
    automated = np.bincount(label[~user], minlength=len(bursts))
    rows, label = rows[user], label[user]
    pair = label.astype(np.int64) * (int(reporter.max()) + 1) + reporter[rows]
    _, first = np.unique(pair, return_index=True)  # each reporter's first report in the burst
    rows, label = rows[first], label[first]
    n = np.bincount(label, minlength=len(bursts))

    age = reports["reporter_age_days"].to_numpy(np.float64, na_value=np.nan)[rows]
    accuracy = reports["reporter_accuracy"].to_numpy(np.float64, na_value=np.nan)[rows]
    resolved = reports["reporter_past_resolved"].to_numpy(np.float64, na_value=np.nan)[rows]
    new = age < config.new_account_days
    low = (resolved >= 1) & (accuracy < config.low_credibility)
    connected, needs = _connected(label, _micros(reports["reporter_created_at"], "reporter_created_at")[rows],
                                  n, config)

    def per_burst(flag: np.ndarray) -> np.ndarray:
        return np.bincount(label, weights=flag, minlength=len(bursts)).astype(np.int64)

    counts = zip(n, automated, per_burst(new), per_burst(low), per_burst(connected), per_burst(new | low), needs)
    return [_Facts(*(int(x) for x in c)) for c in counts]


def _connected(label: np.ndarray, created: np.ndarray, n: np.ndarray,
               config: SpikeConfig) -> tuple[np.ndarray, np.ndarray]:
    """Reporters created within connected_hours of enough other reporters of the same burst.

    Returns (flag per reporter, others needed per burst). Unknown creation
    times are never connected but stay in the denominator.
    """
    needs = np.maximum(np.minimum(config.connected_min_others, n - 1), 1)
    known = created != NAT
    flag = np.zeros(len(label), bool)
    lab, c = label[known], created[known]
    order = _sort_order(lab, c)
    lab, c = lab[order], c[order]
    reach = int(round(config.connected_hours * US_PER_HOUR))
    within = (_count_before(lab, c, lab, c + reach, inclusive=True)
              - _count_before(lab, c, lab, c - reach, inclusive=False) - 1)
    flag[np.flatnonzero(known)[order]] = within >= needs[lab]
    return flag, needs


# ----------------------------------------------------------------------------------------------
# Alerts


@dataclass(frozen=True)
class _Quotes:
    """What alerts quote about their reports: times, codes with their names, and each burst's report ids."""

    t: np.ndarray
    codes: dict[str, tuple[np.ndarray, pd.Index]]
    report_ids: list[np.ndarray]

    @classmethod
    def of(cls, reports: pd.DataFrame, bursts: list[np.ndarray], t: np.ndarray,
           codes: dict[str, tuple[np.ndarray, pd.Index]]) -> "_Quotes":
        rows = np.concatenate(bursts) if bursts else np.zeros(0, np.int64)
        ids = reports["report_id"].take(rows).astype(object).to_numpy(object)
        return cls(t, codes, np.split(ids, np.cumsum([len(b) for b in bursts])[:-1]) if bursts else [])

    def most_common(self, name: str, rows: np.ndarray) -> tuple[str | None, int]:
        """The most frequent non-missing value of a column (ties: the smallest) and its count; (None, 0) if none."""
        codes, names = self.codes[name]
        present = codes[rows]
        values, counts = np.unique(present[present >= 0], return_counts=True)
        if not values.size:
            return None, 0
        top = counts.max()
        return min(str(names[v]) for v in values[counts == top]), int(top)


def _when(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))


def _share(k: int, n: int) -> float:
    return k / n if n else 0.0


def _alert(scope: str, rows: np.ndarray, f: _Facts, report_ids: np.ndarray, quotes: _Quotes,
           config: SpikeConfig) -> Alert:
    start, end = _when(quotes.t[rows].min()), _when(quotes.t[rows].max())
    subject, subject_count = quotes.most_common("subject_id", rows)
    show, _ = quotes.most_common("show_id", rows)
    share_new, share_low = _share(f.new, f.reporters), _share(f.low_credibility, f.reporters)
    share_connected, share_suspicious = _share(f.connected, f.reporters), _share(f.suspicious, f.reporters)
    brigading = share_suspicious >= config.brigading_share or share_connected >= config.brigading_share
    group_id = subject if scope == "subject" else show
    reasons = (
        _what(scope, group_id, rows, f, quotes, subject, subject_count, start, end, config),
        f"{f.new} of {f.reporters} reporters are accounts younger than {config.new_account_days:g} days "
        f"({share_new:.0%})",
        f"{f.low_credibility} of {f.reporters} reporters have low credibility "
        f"(accuracy below {config.low_credibility:g} on reviewed reports) ({share_low:.0%})",
        f"{f.connected} of {f.reporters} reporters have accounts created within {config.connected_hours:g} hours "
        f"of at least {f.connected_needs} other reporters ({share_connected:.0%})",
        _why(brigading, share_suspicious, share_connected, config),
    )
    return Alert(
        key=f"{scope}:{group_id}:{start.isoformat()}",
        scope=scope,
        subject_id=subject,
        show_id=show,
        window_start=start,
        window_end=end,
        report_ids=tuple(sorted(report_ids)),
        count=len(rows),
        distinct_reporters=f.reporters,
        verdict="brigading" if brigading else "incident",
        reasons=reasons,
        share_new=share_new,
        share_low_credibility=share_low,
        share_connected=share_connected,
    )


def _what(scope: str, group_id: str, rows: np.ndarray, f: _Facts, quotes: _Quotes, subject: str,
          subject_count: int, start: datetime, end: datetime, config: SpikeConfig) -> str:
    minutes = (end - start).total_seconds() / 60
    about = (f"about {subject}" if scope == "subject"
             else f"in show {group_id} ({subject_count} about {subject}, the most reported)")
    category, n_category = quotes.most_common("category", rows)
    automated = f", {f.automated} without a reporter account" if f.automated else ""
    return (f"{len(rows)} reports {about} within {minutes:.1f} minutes from {f.reporters} distinct reporters"
            f"{automated} (threshold: {config.min_reports} reports and {config.min_distinct_reporters} reporters "
            f"within {config.window_minutes} minutes); most say {category} ({n_category} of {len(rows)})")


def _why(brigading: bool, share_suspicious: float, share_connected: float, config: SpikeConfig) -> str:
    figures = (f"{share_suspicious:.0%} of reporters are new or low credibility and {share_connected:.0%} are "
               f"connected")
    if brigading:
        return f"brigading: {figures}; at least {config.brigading_share:.0%} either way points to a coordinated group"
    return f"incident: {figures}, both below {config.brigading_share:.0%}"
