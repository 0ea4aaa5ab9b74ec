"""The accounts' history: every event of the raw tables, coded by account and indexed for window queries.

`History.from_tables` codes the tables once (account and order ids to integers) and keeps one
EventStream per kind of event (features.streams); the feature blocks in features.build ask it
"how many of these happened to account k in [t - w, t)". A live history (features.live) answers the
same questions with LayeredStreams, so training and serving share every lookup.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features import vocabulary as V
from features.streams import (
    DAY,
    NAT,
    ONE_BY_ONE_MAX_IDS,
    EventStream,
    Ids,
    as_list,
    column_values,
    seconds,
    values_of,
)


@dataclass
class History:
    """Everything known about accounts over time, indexed for window queries.

    The streams are EventStreams, or in a live history (features.live) LayeredStreams answering the same
    questions; `order_times` holds arrays indexed by order code (or columns that index the same way).
    """

    accounts: Ids
    created: np.ndarray
    verified: np.ndarray
    is_seller: np.ndarray
    orders: Ids
    order_times: Mapping[str, np.ndarray]  # each order's amount, buyer and event times, by order code
    reports_by_subject: EventStream
    fraud_reports_by_subject: EventStream
    reports_by_reporter: EventStream
    outcomes_by_reporter: EventStream
    outcomes_by_subject: EventStream
    violations: dict[str, EventStream]
    actions: dict[str, EventStream]
    penalty_starts: EventStream
    penalty_ends: EventStream
    sold: EventStream
    bought: EventStream
    due: EventStream
    cancels: EventStream
    refunds: EventStream
    seller_fraud: EventStream
    buyer_fraud: EventStream

    @classmethod
    def from_tables(cls, tables: Mapping[str, pd.DataFrame]) -> "History":
        """Index validated raw tables (see features.contract); missing optional tables count as empty."""
        accounts = tables["accounts"]
        ids = Ids.of(column_values(accounts, "account_id"))
        return cls.from_coded(accounts, ids, Ids.of(_order_ids(tables)), code_tables(tables, ids))

    @classmethod
    def from_coded(cls, accounts: pd.DataFrame, ids: Ids, order_ids: Ids, coded: Mapping[str, "Coded"]) -> "History":
        """The History of tables already coded with `ids` (code_tables): what from_tables does after coding."""
        return cls(accounts=ids, **account_state(accounts), orders=order_ids,
                   order_times=order_state(coded["orders"], ids), **event_streams(coded, ids))

    def account_codes(self, ids: pd.Series) -> np.ndarray:
        return self.accounts.codes(ids)

    def created_at(self, codes: np.ndarray, missing: int) -> np.ndarray:
        """Each account's creation time (epoch seconds) by code, `missing` where the code is -1; also when no
        account is known at all (a new store)."""
        known = codes >= 0
        return np.where(known, padded(self.created)[np.where(known, codes, 0)], missing)

    def account_code(self, account_id: str) -> int:
        """One account's code, -1 if unknown: a hash lookup, for checking one request's ids."""
        return self.accounts.code(account_id)

    def order_code(self, order_id: str) -> int:
        return self.orders.code(order_id)

    def order_codes(self, ids: pd.Series) -> np.ndarray:
        return self.orders.codes(ids)


def account_state(accounts: pd.DataFrame) -> dict[str, np.ndarray]:
    """The accounts' static facts by account code (the accounts table's row order)."""
    return {"created": seconds(column_values(accounts, "created_at")),
            "verified": _numpy(column_values(accounts, "verified"), bool),
            "is_seller": _label_codes(column_values(accounts, "role"), ("seller",)) == 0}


def order_state(orders: pd.DataFrame | "Coded", accounts: Ids) -> dict[str, np.ndarray]:
    """Each order's amount, buyer and fact times by order code: plain arrays, not a frame (a frame column
    lookup costs ~35 us, felt on one request)."""
    coded = orders if isinstance(orders, Coded) else code_table("orders", orders, accounts)
    return {name: coded[name] for name in ORDER_STATE}


# The actions the enforcement record counts (History.actions).
RECORD_ACTIONS: tuple[str, ...] = ("warning", "suspension", "ban")
ORDER_STATE = ("amount", "buyer", "created", "ship_by", "shipped", "delivered", "cancelled", "refunded", "fraud_known")
CODED_TABLES = ("orders", "reports", "enforcements", "outcomes")
# Up to this many outcomes and reports together are joined through a dict; more through Arrow's hash join.
SMALL_JOIN_ROWS = 4096


class Coded(dict):
    """One table's rows as `event_streams` reads them: one plain array per column, row-aligned.

    Account ids are codes of the Ids the table was coded with (-1: unknown or missing), times int64 seconds
    (NAT: missing), labels their position in a vocabulary (-1: any other value or missing); report ids, the
    key outcomes join on, are kept as they are. Every column is a function of its own row alone, so the
    coded rows of a concatenation are the concatenation of the coded rows: features.live keeps a
    snapshot's tables coded and takes the rows a change touches with numpy instead of slicing frames.

      orders        ORDER_STATE and seller
      reports       report_id, subject, reporter, created, fraud_family (the category's family is fraud)
      outcomes      report_id, resolved, valid, fraud (fraud_confirmed)
      enforcements  account, decided, family (in V.FAMILIES), action (in RECORD_ACTIONS), action_days
    """


def code_tables(tables: Mapping[str, pd.DataFrame], ids: Ids) -> dict[str, Coded]:
    """Every table `event_streams` reads, coded with `ids` (a missing table as empty)."""
    return {name: code_table(name, tables.get(name), ids) for name in CODED_TABLES}


def code_table(name: str, frame: pd.DataFrame | None, ids: Ids) -> Coded:
    """One validated contract table's rows as `event_streams` reads them (see Coded); None or no rows: empty.

    A frame's column costs ~20 us to fetch and a Series conversion as much again, so a refresh's few rows
    are coded element by element where pandas would cost more than the work (one code path either way:
    each column is the same function of its row)."""
    if frame is None or not len(frame):
        return Coded(_empty_coded(name))
    column = lambda col: column_values(frame, col)  # noqa: E731
    if name == "orders":
        return Coded(
            amount=_numpy(column("amount"), np.float64), buyer=ids.codes(column("buyer_id")),
            created=seconds(column("created_at")), ship_by=seconds(column("ship_by")),
            shipped=seconds(column("shipped_at")), delivered=seconds(column("delivered_at")),
            cancelled=seconds(column("cancelled_at")), refunded=seconds(column("refunded_at")),
            fraud_known=seconds(column("fraud_known_at")), seller=ids.codes(column("seller_id")))
    if name == "reports":
        return Coded(report_id=column("report_id"), subject=ids.codes(column("subject_id")),
                     reporter=ids.codes(column("reporter_id")), created=seconds(column("created_at")),
                     fraud_family=_is_fraud_category(column("category")))
    if name == "outcomes":
        return Coded(report_id=column("report_id"), resolved=seconds(column("resolved_at")),
                     valid=_numpy(column("valid"), bool), fraud=_numpy(column("fraud_confirmed"), bool))
    if name == "enforcements":
        return Coded(account=ids.codes(column("account_id")), decided=seconds(column("decided_at")),
                     family=_label_codes(column("family"), V.FAMILIES),
                     action=_label_codes(column("action"), RECORD_ACTIONS),
                     action_days=_numpy(column("action_days"), np.int64))
    raise KeyError(f"event_streams reads no table {name!r}")


_EMPTY_CODED: dict[str, dict[str, np.ndarray]] = {}


def _empty_coded(name: str) -> dict[str, np.ndarray]:
    """A table with no rows, coded: built once per table (read-only arrays, shared by every caller)."""
    if name not in _EMPTY_CODED:
        kinds = {
            "orders": {**dict.fromkeys(ORDER_STATE, np.int64), "amount": np.float64, "seller": np.int64},
            "reports": {"report_id": object, "subject": np.int64, "reporter": np.int64, "created": np.int64,
                        "fraud_family": bool},
            "outcomes": {"report_id": object, "resolved": np.int64, "valid": bool, "fraud": bool},
            "enforcements": {"account": np.int64, "decided": np.int64, "family": np.int8, "action": np.int8,
                             "action_days": np.int64},
        }[name]
        columns = {col: np.zeros(0, dtype=dtype) for col, dtype in kinds.items()}
        for values in columns.values():
            values.flags.writeable = False
        _EMPTY_CODED[name] = columns
    return _EMPTY_CODED[name]


def _order_ids(tables: Mapping[str, pd.DataFrame]) -> Sequence:
    orders = tables.get("orders")
    return [] if orders is None else column_values(orders, "order_id")


def _numpy(values, dtype) -> np.ndarray:
    """A column's stored values (column_values) as a new numpy array of `dtype`, as Series.to_numpy(dtype)
    gives them (a copy: the stored array is the frame's own memory)."""
    return np.array(values, dtype=dtype) if isinstance(values, np.ndarray) else values.to_numpy(dtype=dtype, copy=True)


def _is_fraud_category(categories: Sequence) -> np.ndarray:
    """Whether each report's category belongs to the fraud family (unknown or missing: no)."""
    return _lookup(categories, lambda c: V.CATEGORY_FAMILY.get(c) == "fraud", bool)


def _label_codes(values: Sequence, labels: Sequence[str]) -> np.ndarray:
    """Each value's position in `labels`, -1 for any other value or a missing one."""
    where = {label: i for i, label in enumerate(labels)}
    return _lookup(values, lambda v: where.get(v, -1), np.int8)


def _lookup(values: Sequence, of, dtype) -> np.ndarray:
    """of(value) for each value (missing values included), as an array of `dtype`: one by one for a few,
    else once per distinct value (pandas' map or a comparison per label cost 0.4-3 ms at any size, and the
    distinct values of a label column are few)."""
    if len(values) <= ONE_BY_ONE_MAX_IDS:
        return np.array([of(v) for v in as_list(values)], dtype=dtype)
    codes, distinct = pd.factorize(values)  # missing values: code -1, the last entry below
    return np.array([of(v) for v in as_list(distinct)] + [of(np.nan)], dtype=dtype)[codes]


def event_streams(tables: Mapping[str, pd.DataFrame | Coded], ids: Ids) -> dict[str, EventStream]:
    """Every event stream of a History, keyed by the codes of `ids`.

    `tables` holds validated contract tables or the same coded with `ids` (code_table); a missing one counts
    as empty. Only rows of the same table are combined here, and only within a group: an order's new-pair
    flag within its buyer and seller, a report's distinct-reporter flag within its subject and reporter, an
    outcome through its report, an order's fulfilment events within the order. A live history
    (features.live) relies on that to rebuild the streams of just the groups that changed.
    """
    orders, reports, enforcements, outcomes = (
        table if isinstance(table := tables.get(name), Coded) else code_table(name, table, ids)
        for name in ("orders", "reports", "enforcements", "outcomes"))

    seller, buyer, created = orders["seller"], orders["buyer"], orders["created"]
    ship_by, shipped, cancelled_at = orders["ship_by"], orders["shipped"], orders["cancelled"]
    cancelled_before_due = (cancelled_at != NAT) & (cancelled_at <= ship_by)
    missed = ((shipped == NAT) | (shipped > ship_by)) & ~cancelled_before_due
    due_at = np.where(cancelled_before_due, NAT, ship_by)
    fraud_known = orders["fraud_known"]
    amount = orders["amount"]
    new_pair = _first_of_pair(buyer, seller, created).astype(np.float64)

    subject, reporter, report_t = reports["subject"], reports["reporter"], reports["created"]
    fraud_family = reports["fraud_family"]

    # Outcomes joined with their reports, in outcome order (an inner one-to-one join).
    report_of = _rows_by_key(outcomes["report_id"], reports["report_id"])
    joined = np.flatnonzero(report_of >= 0)
    report_of = report_of[joined]
    resolved = outcomes["resolved"][joined]
    valid = outcomes["valid"][joined].astype(np.float64)
    fraud = outcomes["fraud"][joined].astype(np.float64)
    return {
        "reports_by_subject": EventStream(subject, report_t,
                                          flags={"pair_prev": _previous_same_pair(subject, reporter, report_t)}),
        "fraud_reports_by_subject": EventStream(subject[fraud_family], report_t[fraud_family]),
        "reports_by_reporter": EventStream(reporter, report_t),
        "outcomes_by_reporter": EventStream(reporter[report_of], resolved, {"valid": valid}),
        "outcomes_by_subject": EventStream(subject[report_of], resolved, {"valid": valid, "fraud": fraud}),
        "violations": {fam: _stream_where(enforcements, enforcements["family"] == i)
                       for i, fam in enumerate(V.FAMILIES)},
        "actions": {act: _stream_where(enforcements, enforcements["action"] == i)
                    for i, act in enumerate(RECORD_ACTIONS)},
        **_penalty_streams(enforcements),
        "sold": EventStream(seller, created, {"amount": amount, "new_pair": new_pair}),
        "bought": EventStream(buyer, created, {"amount": amount, "new_pair": new_pair}),
        "due": EventStream(seller, due_at, {"missed": missed.astype(np.float64)}),
        "cancels": EventStream(seller, cancelled_at),
        "refunds": EventStream(seller, orders["refunded"]),
        "seller_fraud": EventStream(seller, fraud_known),
        "buyer_fraud": EventStream(buyer, fraud_known),
    }


def _rows_by_key(keys: Sequence, among: Sequence) -> np.ndarray:
    """The position in `among` of each of `keys`, -1 where none: outcomes joined with their reports, one to
    one. Duplicate keys on either side raise MergeError, as the pandas merge this replaces (validate=
    "one_to_one") did; missing keys match each other, as they did there. That merge cost ~3.5 ms even for
    a refresh's few rows and 30 ms at 20,000 reports: a few rows go through a dict, more through Arrow's
    hash lookup (5x faster than the merge), keys that are not strings through a pandas index."""
    if len(keys) + len(among) <= SMALL_JOIN_ROWS:
        keys, among = as_list(keys), as_list(among)
        where = dict(zip(among, range(len(among))))
        _one_to_one(len(where) == len(among) and len(set(keys)) == len(keys))
        return np.array([where.get(k, -1) for k in keys], dtype=np.int64)
    try:
        keys, among = (pa.array(values_of(v), type=pa.large_string(), from_pandas=True) for v in (keys, among))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        keys, among = pd.Index(values_of(keys)), pd.Index(values_of(among))
        _one_to_one(keys.is_unique and among.is_unique)
        return among.get_indexer(keys).astype(np.int64)
    _one_to_one(pc.count_distinct(among, mode="all").as_py() == len(among)
                and pc.count_distinct(keys, mode="all").as_py() == len(keys))
    return pc.index_in(keys, value_set=among).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _one_to_one(unique: bool) -> None:
    if not unique:
        raise pd.errors.MergeError("Merge keys are not unique in either left or right dataset; not a one-to-one merge")


def _previous_same_pair(subject: np.ndarray, reporter: np.ndarray, t: np.ndarray) -> np.ndarray:
    """For each report, when the same reporter last reported the same subject (NAT if never).

    Reports without a reporter get +inf so they never count as a distinct reporter.
    """
    order = np.lexsort((t, reporter, subject))
    s, r, tt = subject[order], reporter[order], t[order]
    same = np.zeros(len(order), dtype=bool)
    same[1:] = (s[1:] == s[:-1]) & (r[1:] == r[:-1])
    prev_sorted = np.where(same, np.concatenate(([NAT], tt[:-1])), NAT)
    prev_sorted = np.where(r < 0, np.iinfo(np.int64).max, prev_sorted)
    prev = np.empty_like(prev_sorted)
    prev[order] = prev_sorted
    return prev


def _first_of_pair(buyer: np.ndarray, seller: np.ndarray, t: np.ndarray) -> np.ndarray:
    """For each order, whether it is the first between its buyer and seller (ties in time: the first row).

    An order with an unknown buyer or seller (a live order naming an account not seen yet) is a pair of its
    own: unknown accounts are not one account."""
    order = np.lexsort((np.arange(len(t)), t, seller, buyer))
    b, s = buyer[order], seller[order]
    first_sorted = np.ones(len(order), dtype=bool)
    first_sorted[1:] = (b[1:] != b[:-1]) | (s[1:] != s[:-1]) | (b[1:] < 0) | (s[1:] < 0)
    first = np.empty_like(first_sorted)
    first[order] = first_sorted
    return first


def _stream_where(enforcements: Coded, mask: np.ndarray) -> EventStream:
    return EventStream(enforcements["account"][mask], enforcements["decided"][mask])


def _penalty_streams(enforcements: Coded) -> dict[str, EventStream]:
    """Starts and ends of time-limited actions: active at t = started before t minus ended by t."""
    timed = enforcements["action_days"] > 0
    keys = enforcements["account"][timed]
    start = enforcements["decided"][timed]
    end = start + enforcements["action_days"][timed] * DAY
    # An end exactly at t means the penalty is over at t, so ends count from t + 1.
    return {"penalty_starts": EventStream(keys, start), "penalty_ends": EventStream(keys, end - 1)}


def padded(values: np.ndarray) -> np.ndarray:
    """An account column that can be indexed at 0 even with no accounts yet (a new store: every key is -1)."""
    return values if len(values) else np.zeros(1, dtype=values.dtype)
