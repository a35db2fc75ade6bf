"""The service's transfer queue: explicit evictions cancel the queued caches they concern,
go before every transfer, and a plan made before them cannot bring those caches back."""

from __future__ import annotations

import threading

from cacherr.cycle.transfers import EvictJob, Transfer, TransferQueue
from cacherr.planner import PlannedAction


def transfer(kind: str, path: str) -> Transfer:
    return Transfer(PlannedAction(kind, path, 1, 50), None)


def drain(queue: TransferQueue) -> list:
    taken = []
    while (item := queue.take(timeout_seconds=0)) is not None:
        taken.append(item if isinstance(item, EvictJob) else
                     (item.action.kind, item.action.relative_path))
        queue.finished()
    return taken


def test_evict_all_cancels_queued_caches_keeps_evictions_and_goes_first():
    queue = TransferQueue()
    queue.replace([transfer("cache", "a"), transfer("evict", "b"), transfer("adopt", "c")],
                  planned_at=10)
    assert queue.cancel_caches(None, at=20) == ["a", "c"]
    job = EvictJob(all=True)
    queue.put_request(job)
    assert queue.pending_counts() == {"to_cache": 0, "to_slow": 1}
    assert drain(queue) == [job, ("evict", "b")]


def test_a_plan_made_before_the_cancellation_does_not_bring_caches_back():
    queue = TransferQueue()
    queue.cancel_caches(None, at=20)
    queue.replace([transfer("cache", "a"), transfer("evict", "b")], planned_at=19)
    queue.put_first([transfer("cache", "c")], planned_at=20)
    assert drain(queue) == [("evict", "b")]
    queue.replace([transfer("cache", "a")], planned_at=21)  # a newer plan may
    assert drain(queue) == [("cache", "a")]


def test_cancelling_some_paths_leaves_the_other_caches_queued():
    queue = TransferQueue()
    queue.replace([transfer("cache", "a"), transfer("cache", "b")], planned_at=1)
    assert queue.cancel_caches(["a"], at=2) == ["a"]
    queue.put_first([transfer("cache", "a"), transfer("cache", "d")], planned_at=1)
    assert drain(queue) == [("cache", "d"), ("cache", "b")]


def test_a_full_plan_keeps_the_waiting_requests_ahead_of_it():
    queue = TransferQueue()
    job = EvictJob(paths=("x",))
    queue.put_request(job)
    queue.replace([transfer("cache", "a")], planned_at=5)
    assert drain(queue) == [job, ("cache", "a")]
    queue.close()
    assert queue.take(timeout_seconds=0) is None


def test_a_request_or_a_close_ends_the_wait_of_a_held_transfer_at_once():
    # The worker waits out a guard hold (30 s) on the queue: an explicit eviction must not
    # wait with it. A one-hour timeout makes a missed wake-up fail by the join's timeout.
    def waited(wake) -> bool:
        queue = TransferQueue()
        outcome: list[bool] = []
        waiter = threading.Thread(target=lambda: outcome.append(queue.wait_for_request(3600)))
        waiter.start()
        wake(queue)
        waiter.join(timeout=30)
        assert not waiter.is_alive()
        return outcome[0]

    assert waited(lambda queue: queue.put_request(EvictJob(paths=("a",)))) is True
    assert waited(TransferQueue.close) is False
    assert TransferQueue().wait_for_request(0) is False
