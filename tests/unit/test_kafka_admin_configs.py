"""Topic configs that decide whether an acknowledged record survives a broker loss."""

import pytest

from healthscore.kafka_admin import _configs
from healthscore.topics import TopicSpec


@pytest.mark.parametrize(("replicas", "min_isr"), [(1, "1"), (2, "1"), (3, "2")])
def test_acks_all_waits_for_all_but_one_replica(replicas: int, min_isr: str) -> None:
    assert _configs(TopicSpec("t", 3), replicas)["min.insync.replicas"] == min_isr


def test_a_specs_own_config_wins() -> None:
    spec = TopicSpec("t", 1, {"cleanup.policy": "compact", "min.insync.replicas": "3"})
    assert _configs(spec, 3) == {"cleanup.policy": "compact", "min.insync.replicas": "3"}
