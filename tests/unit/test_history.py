"""EventStream answers window questions exactly like a brute-force scan of the events."""
import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from features.history import ARROW_LOOKUP_MIN_IDS, NAT, EventStream, Query, codes_for

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
