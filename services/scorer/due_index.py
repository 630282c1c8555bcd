"""Which owned accounts need a rescore without a new event, and when.

The decay timer must not scan every account on every run: the index keeps, per account, the
time its windows next slide (``engine.next_rescore_at``, stored in each table record's header) in
a heap, and a queue of accounts to rescore because the model set changed. It is rebuilt from the
table after every rebalance (only partitions this worker owns) and kept current by the agent.
Counts per status feed the ``healthscore_scorer_accounts`` gauge.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, deque
from dataclasses import dataclass

from schemas.messages import Status

_NEVER = math.inf


@dataclass(slots=True)
class _Entry:
    partition: int
    due: float  # Unix seconds by the scorer's clock; inf = nothing to do with time alone
    status: Status | None


class DueIndex:
    def __init__(self) -> None:
        self._entries: dict[bytes, _Entry] = {}
        self._heap: list[tuple[float, bytes]] = []
        self._model_queue: deque[bytes] = deque()
        self._model_pending: set[bytes] = set()
        self.status_counts: Counter[Status] = Counter()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def update(
        self,
        key: bytes,
        partition: int,
        due_epoch: float,
        status: Status | None,
        *,
        model_stale: bool = False,
    ) -> None:
        due = _NEVER if math.isnan(due_epoch) else due_epoch
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Entry(partition, due, status)
            if status is not None:
                self.status_counts[status] += 1
            if due != _NEVER:
                heapq.heappush(self._heap, (due, key))
        else:
            if entry.status != status:
                if entry.status is not None:
                    self.status_counts[entry.status] -= 1
                if status is not None:
                    self.status_counts[status] += 1
                entry.status = status
            entry.partition = partition
            if entry.due != due:
                entry.due = due
                if due != _NEVER:
                    heapq.heappush(self._heap, (due, key))
        if model_stale and key not in self._model_pending:
            self._model_pending.add(key)
            self._model_queue.append(key)

    def discard(self, key: bytes) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None and entry.status is not None:
            self.status_counts[entry.status] -= 1
        self._model_pending.discard(key)

    def keep_partitions(self, partitions: set[int]) -> None:
        """Forget accounts of partitions this worker no longer owns."""
        for key in [k for k, e in self._entries.items() if e.partition not in partitions]:
            self.discard(key)

    def mark_all_model_stale(self) -> None:
        """The model set changed: every owned account gets a model rescore."""
        for key in self._entries:
            if key not in self._model_pending:
                self._model_pending.add(key)
                self._model_queue.append(key)

    def pop_model_stale(self, limit: int) -> list[tuple[bytes, int]]:
        out: list[tuple[bytes, int]] = []
        while self._model_queue and len(out) < limit:
            key = self._model_queue.popleft()
            if key not in self._model_pending:
                continue
            self._model_pending.discard(key)
            entry = self._entries.get(key)
            if entry is not None:
                out.append((key, entry.partition))
        return out

    def pop_due(self, now_epoch: float, limit: int) -> list[tuple[bytes, int]]:
        """Accounts due at ``now_epoch``, oldest first, at most ``limit``. They leave the heap;
        the agent puts them back with their next due time when it processes their tick."""
        out: list[tuple[bytes, int]] = []
        heap = self._heap
        while heap and heap[0][0] <= now_epoch and len(out) < limit:
            due, key = heapq.heappop(heap)
            entry = self._entries.get(key)
            if entry is None or entry.due != due:
                continue  # stale heap item: the account moved on or left
            entry.due = _NEVER
            out.append((key, entry.partition))
        return out

    def due_count(self, now_epoch: float) -> int:
        """Accounts due now (scans the heap's due prefix: for metrics, not the hot path)."""
        return sum(
            1
            for due, key in self._heap
            if due <= now_epoch and (e := self._entries.get(key)) is not None and e.due == due
        ) + len(self._model_pending)
