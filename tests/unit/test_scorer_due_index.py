"""The decay timer's due-index: only due accounts, oldest first, bounded per run."""

from __future__ import annotations

import math

from services.scorer.due_index import DueIndex


def test_pop_due_returns_only_due_accounts_oldest_first_within_the_limit() -> None:
    index = DueIndex()
    for n in range(10):
        index.update(f"a{n}".encode(), n % 3, float(100 + n), "green")
    index.update(b"never", 0, math.nan, "red")
    assert index.pop_due(99.0, 100) == []
    assert index.pop_due(104.0, 3) == [(b"a0", 0), (b"a1", 1), (b"a2", 2)]
    assert index.pop_due(104.0, 100) == [(b"a3", 0), (b"a4", 1)]
    assert index.pop_due(104.0, 100) == []  # popped accounts wait for their tick
    assert len(index) == 11


def test_an_update_moves_the_due_time_and_stale_heap_items_are_skipped() -> None:
    index = DueIndex()
    index.update(b"a", 0, 100.0, "green")
    index.update(b"a", 0, 200.0, "amber")
    assert index.pop_due(150.0, 10) == []
    assert index.pop_due(200.0, 10) == [(b"a", 0)]
    index.update(b"a", 0, 300.0, "amber")  # the tick was processed: next due time
    assert index.pop_due(300.0, 10) == [(b"a", 0)]


def test_status_counts_follow_updates_and_partition_loss() -> None:
    index = DueIndex()
    index.update(b"a", 0, 1.0, "green")
    index.update(b"b", 1, 1.0, "green")
    index.update(b"c", 2, 1.0, "red")
    index.update(b"a", 0, 1.0, "amber")
    assert dict(index.status_counts) == {"green": 1, "amber": 1, "red": 1}
    index.keep_partitions({0, 2})
    assert b"b" not in index
    assert dict(index.status_counts) == {"green": 0, "amber": 1, "red": 1}
    assert index.pop_due(10.0, 10) == [(b"a", 0), (b"c", 2)]


def test_model_changes_queue_every_account_once() -> None:
    index = DueIndex()
    for n in range(5):
        index.update(f"a{n}".encode(), 0, math.nan, "green", model_stale=n == 0)
    index.mark_all_model_stale()
    index.mark_all_model_stale()
    first = index.pop_model_stale(3)
    rest = index.pop_model_stale(10)
    assert sorted(first + rest) == [(f"a{n}".encode(), 0) for n in range(5)]
    assert index.pop_model_stale(10) == []
    index.discard(b"a1")
    index.mark_all_model_stale()
    assert len(index.pop_model_stale(10)) == 4
