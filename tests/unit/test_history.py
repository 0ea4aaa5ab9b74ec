"""EventStream answers window questions exactly like a brute-force scan of the events."""
import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from features.streams import (
    ARROW_LOOKUP_MIN_IDS,
    NAT,
    EventStream,
    Ids,
    Query,
    codes_for,
    column_values,
    seconds,
)

events = st.lists(st.tuples(st.integers(-1, 4), st.integers(0, 50), st.floats(0, 10)), max_size=60)
queries = st.lists(st.tuples(st.integers(-1, 5), st.integers(0, 60), st.one_of(st.none(), st.integers(1, 30))),
                   min_size=1, max_size=20)


def _arrays(evts):
    keys = np.array([e[0] for e in evts], dtype=np.int64)
    times = np.array([e[1] for e in evts], dtype=np.int64)
    vals = np.array([e[2] for e in evts], dtype=np.float64)
    return keys, times, vals


@settings(max_examples=200, deadline=None)
@given(events, queries)
def test_count_and_total_match_brute_force_for_any_window(evts, qs):
    keys, times, vals = _arrays(evts)
    stream = EventStream(keys, times, {"v": vals})
    for k, t, w in qs:
        lo = 0 if w is None else max(t - w, 0)
        mask = (keys == k) & (times >= lo) & (times < t) & (keys >= 0)
        q = Query(np.array([k]), np.array([t]))
        assert stream.count(q, w)[0] == mask.sum()
        assert np.isclose(stream.total("v", q, w)[0], vals[mask].sum())


@settings(max_examples=100, deadline=None)
@given(events, queries)
def test_a_batch_of_queries_answers_like_each_query_alone(evts, qs):
    keys, times, vals = _arrays(evts)
    stream = EventStream(keys, times, {"v": vals})
    batch = Query(np.array([k for k, _, _ in qs]), np.array([t for _, t, _ in qs]))
    for w in (None, 7):
        together = stream.total("v", batch, w)
        alone = [stream.total("v", Query(np.array([k]), np.array([t])), w)[0] for k, t, _ in qs]
        assert np.allclose(together, alone)


def test_events_at_the_query_time_are_not_counted():
    stream = EventStream(np.array([1, 1, 1]), np.array([10, 20, 30]))
    assert stream.count(Query(np.array([1, 1, 1]), np.array([10, 20, 31]))).tolist() == [0, 1, 3]


def test_missing_times_and_unknown_keys_never_match():
    stream = EventStream(np.array([1, -1, 1]), np.array([NAT, 5, 7]))
    assert len(stream) == 1
    assert stream.count(Query(np.array([-1, 1]), np.array([100, 100]))).tolist() == [0, 1]


@settings(max_examples=100, deadline=None)
@given(events, queries)
def test_count_where_matches_brute_force(evts, qs):
    keys, times, vals = _arrays(evts)
    flag_original = vals  # any per-event number
    stream = EventStream(keys, times, {}, {"f": flag_original})
    for k, t, w in qs:
        w = w or 5
        thr = float(t) / 7
        mask = (keys == k) & (times >= max(t - w, 0)) & (times < t) & (flag_original < thr) & (keys >= 0)
        got = stream.count_where(Query(np.array([k]), np.array([t])), w, "f", np.array([thr]))
        assert got[0] == mask.sum()


def test_codes_for_gives_the_same_codes_through_arrow_for_a_large_batch():
    index = pd.Index([f"a{i:06d}" for i in range(40_000)], dtype=object)
    rng = np.random.default_rng(3)
    ids = pd.Series(rng.choice(np.array(list(index) + ["unknown", None], dtype=object), 30_000), dtype="str")
    arrow = pa.array(index, type=pa.large_string())
    assert len(ids) >= max(ARROW_LOOKUP_MIN_IDS, len(index) // 4)  # takes the Arrow path
    expected = codes_for(ids, index)
    assert (expected == -1).any() and (expected >= 0).any()
    assert np.array_equal(codes_for(ids, index, arrow), expected)


def _timestamps(unit: str, tz: str | None) -> pd.Series:
    """Times on both sides of 1970, with fractions of a second and a missing one."""
    values = pd.to_datetime(["1969-12-31 23:59:59.5", "1969-12-31 23:59:58.000001", "1900-01-01 00:00:00.999",
                             "2024-03-01 12:00:00.7", None, "2024-03-01"], format="ISO8601")
    series = pd.Series(values).dt.as_unit(unit)
    return series.dt.tz_localize(tz) if tz else series


def test_seconds_floors_like_the_dt_accessor_for_every_unit_and_zone():
    for unit in ("s", "ms", "us", "ns"):
        for tz in (None, "UTC", "Europe/Paris"):
            series = _timestamps(unit, tz)
            expected = np.asarray(series.dt.as_unit("s").array.asi8, dtype=np.int64)
            for values in (series, series.array):
                got = seconds(values)
                assert got.dtype == np.int64 and np.array_equal(got, expected), (unit, tz)
            assert got[4] == NAT


def test_seconds_does_not_share_the_frames_memory():
    frame = pd.DataFrame({"t": _timestamps("s", "UTC")})
    got = seconds(column_values(frame, "t"))
    assert not np.shares_memory(got, frame["t"].array.asi8)


def test_column_values_are_the_columns_values():
    frame = pd.DataFrame({"s": pd.Series(["a", None, "c"], dtype="str"), "f": [1.5, np.nan, 2.0],
                          "b": [True, False, True], "i": [1, 2, 3], "t": _timestamps("us", "UTC")[:3]})
    for name in frame.columns:
        got, expected = column_values(frame, name), frame[name].array
        assert len(got) == len(expected)
        assert pd.Series(got).equals(pd.Series(expected)), name


def test_ids_code_many_ids_like_one_at_a_time():
    ids = Ids.of(pd.Series([f"a{i}" for i in range(300)], dtype="str"))
    new = pd.Series([f"n{i}" for i in range(100)] + ["a5", None, "n3"], dtype="str")
    grown = ids.extended(new)  # more than ONE_BY_ONE_MAX_IDS at once: one index lookup
    assert len(grown) == 400 and grown.added == {f"n{i}": 300 + i for i in range(100)}
    assert grown.extended(new.iloc[:3]) is grown
    for batch in (new, new.iloc[:10], pd.Series(["n7", "a1", "x", None] * 30, dtype="str")):
        one_by_one = [grown.code(v) for v in batch.to_list()]
        assert grown.codes(batch).tolist() == one_by_one
        assert grown.codes(batch.to_numpy(object)).tolist() == one_by_one


def test_an_empty_stream_is_built_like_one_whose_events_were_all_dropped():
    flags = {"f": np.array([NAT])}
    empty = EventStream(np.zeros(0, np.int64), np.zeros(0, np.int64), {"v": np.zeros(0)}, {"f": flags["f"][:0]})
    dropped = EventStream(np.array([-1]), np.array([5]), {"v": np.ones(1)}, flags)
    for name in ("keys", "times", "composite", "order"):
        a, b = getattr(empty, name), getattr(dropped, name)
        assert a.dtype == b.dtype and a.shape == b.shape == (0,), name
    assert empty._cums["v"].tobytes() == dropped._cums["v"].tobytes()
    assert empty.flags["f"].dtype == dropped.flags["f"].dtype
    q = Query(np.array([0, -1]), np.array([10, 10]))
    assert empty.count(q).tolist() == [0, 0] and empty.total("v", q).tolist() == [0, 0]
    assert empty.last_time(q).tolist() == [NAT, NAT]
