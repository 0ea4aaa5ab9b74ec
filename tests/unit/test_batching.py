"""serving.scoring.batching.Coalescer: concurrent jobs scored together, each answered with its own results."""
from __future__ import annotations

import threading

import pytest

from serving.scoring.batching import Coalescer


class Recorder:
    """A pass function that records each pass and can hold the first one until released."""

    def __init__(self, hold_first: bool = False):
        self.passes: list[tuple[object, list]] = []
        self.release = threading.Event()
        self.started = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, group, items):
        self.started.set()
        self.release.wait(5)
        self.passes.append((group, list(items)))
        return [(group, item, item * 10) for item in items]


def test_jobs_waiting_behind_a_pass_share_the_next_one_and_get_their_own_results():
    work = Recorder(hold_first=True)
    c = Coalescer(work, max_items=100)
    first = c.submit("v1", [1])
    assert work.started.wait(5)
    waiting = [c.submit("v1", [i, i + 1]) for i in range(10, 50, 10)]
    work.release.set()
    assert first.result(5) == [("v1", 1, 10)]
    for job, i in zip(waiting, range(10, 50, 10)):
        assert job.result(5) == [("v1", i, i * 10), ("v1", i + 1, (i + 1) * 10)]
    assert [items for _, items in work.passes] == [[1], [10, 11, 20, 21, 30, 31, 40, 41]]
    c.close()


def test_groups_never_share_a_pass_and_passes_respect_max_items_without_splitting_a_job():
    work = Recorder(hold_first=True)
    c = Coalescer(work, max_items=5)
    c.submit("a", [0])
    assert work.started.wait(5)
    jobs = [c.submit("a", [1, 2, 3]), c.submit("b", [4]), c.submit("a", [5, 6]), c.submit("a", [7, 8]),
            c.submit("a", list(range(100, 108)))]
    work.release.set()
    results = [j.result(5) for j in jobs]
    assert [r[0] for r in results[0]] == ["a"] * 3 and results[1] == [("b", 4, 40)]
    passes = work.passes[1:]
    group_of = {4: "b", **{i: "a" for i in [1, 2, 3, 5, 6, 7, 8, *range(100, 108)]}}
    assert all(group_of[i] == group for group, items in passes for i in items)
    assert ("a", [1, 2, 3, 5, 6]) in passes  # filled up to max_items, skipping the other group's job
    assert ("b", [4]) in passes
    assert ("a", list(range(100, 108))) in passes  # a job larger than max_items runs alone, whole
    assert sorted(i for _, items in passes for i in items) == [1, 2, 3, 4, 5, 6, 7, 8, *range(100, 108)]


def test_a_failing_pass_fails_only_its_own_jobs():
    def work(group, items):
        if "bad" in items:
            raise ValueError("boom")
        return items

    c = Coalescer(work, max_items=1)  # one job per pass
    bad, good = c.submit(0, ["bad"]), c.submit(0, ["good"])
    with pytest.raises(ValueError, match="boom"):
        bad.result(5)
    assert good.result(5) == ["good"]
    assert c.run(0, ["again"]) == ["again"]


def test_a_pass_returning_the_wrong_number_of_results_is_an_error_not_a_misrouted_answer():
    c = Coalescer(lambda group, items: items[:-1], max_items=10)
    with pytest.raises(RuntimeError, match="returned 1 results"):
        c.run(0, [1, 2])


def test_many_threads_each_get_exactly_their_answers():
    c = Coalescer(lambda group, items: [x * x for x in items], max_items=16)
    out: dict[int, list[int]] = {}

    def client(k: int) -> None:
        out[k] = [c.run(0, [k * 100 + j, k * 100 + j + 1]) for j in range(0, 40, 2)]

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert all(out[k] == [[(k * 100 + j) ** 2, (k * 100 + j + 1) ** 2] for j in range(0, 40, 2)] for k in range(8))


def test_closed_coalescer_refuses_work_and_bad_sizes_are_rejected():
    c = Coalescer(lambda group, items: items, max_items=2)
    c.close()
    with pytest.raises(RuntimeError, match="closed"):
        c.submit(0, [1])
    with pytest.raises(ValueError, match="max_items"):
        Coalescer(lambda group, items: items, max_items=0)


def test_coroutines_waiting_behind_a_pass_get_their_own_results_in_one_wake_up_of_their_loop():
    import asyncio

    work = Recorder(hold_first=True)
    c = Coalescer(work, max_items=100)

    async def main():
        loop = asyncio.get_running_loop()
        wakeups = []
        real = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = lambda *a, **k: (wakeups.append(a[0]), real(*a, **k))[1]
        first = c.submit_async("v1", [1])
        await asyncio.to_thread(work.started.wait, 5)
        waiting = [c.submit_async("v1", [i]) for i in (2, 3, 4)]
        work.release.set()
        results = await asyncio.gather(first, *waiting)
        return results, sum(1 for callback in wakeups if callback.__name__ == "_settle")  # not to_thread's own

    results, wakeups = asyncio.run(main())
    assert results == [[("v1", i, i * 10)] for i in (1, 2, 3, 4)]
    assert [items for _, items in work.passes] == [[1], [2, 3, 4]]
    assert wakeups == 2  # one per pass, not one per job
    c.close()


def test_a_failing_pass_fails_its_coroutines_and_a_cancelled_waiter_is_skipped():
    import asyncio

    calls = []

    def work(group, items):
        calls.append(list(items))
        if 0 in items:
            raise ValueError("bad pass")
        return [item * 10 for item in items]

    c = Coalescer(work, max_items=1)

    async def main():
        gone = c.submit_async("g", [5])
        gone.cancel()  # its client went away before the pass finished
        failing = c.submit_async("g", [0])
        with pytest.raises(ValueError, match="bad pass"):
            await failing
        return await c.submit_async("g", [7])

    assert asyncio.run(main()) == [70]
    assert calls == [[5], [0], [7]]
    c.close()
