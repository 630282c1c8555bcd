"""DecaySweeper: the timer that rescores quiet accounts.

A faust timer cannot write tables, so the sweeper sends keyed tick records to the ticks topic
(co-partitioned with the events) and the scoring agent rescores inside its stream iteration.
Each run takes at most ``rate * interval`` accounts from the due-index: model-change rescores
first, then accounts whose windows slid (oldest due first), so the midnight when every daily
bucket rolls over is spread over time instead of flooding the agent.
"""

from __future__ import annotations

import time

from healthscore.clock import Clock
from services.scorer.due_index import DueIndex
from services.scorer.metrics import ScorerMetrics
from services.scorer.outputs import KafkaScorePublisher


class DecaySweeper:
    def __init__(
        self,
        *,
        index: DueIndex,
        publisher: KafkaScorePublisher,
        clock: Clock,
        metrics: ScorerMetrics,
        interval_seconds: float,
        ticks_per_second: float,
    ) -> None:
        self._index = index
        self._publisher = publisher
        self._clock = clock
        self._metrics = metrics
        self._budget = max(1, int(ticks_per_second * interval_seconds))

    async def run_once(self) -> int:
        """Send the ticks due now (up to the budget); returns how many were sent."""
        started = time.perf_counter()
        model = self._index.pop_model_stale(self._budget)
        for key, partition in model:
            await self._publisher.tick(key, partition, "model")
        due = self._index.pop_due(self._clock.now().timestamp(), self._budget - len(model))
        for key, partition in due:
            await self._publisher.tick(key, partition, "time")
        if model:
            self._metrics.ticks_sent.labels("model").inc(len(model))
        if due:
            self._metrics.ticks_sent.labels("time").inc(len(due))
        self._metrics.decay_sweep.observe(time.perf_counter() - started)
        return len(model) + len(due)
