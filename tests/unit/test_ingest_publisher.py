"""The publisher's partitioner puts every key where aiokafka's (and Java's) default one does."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.publisher import cached_murmur2_partitioner


@given(key=st.binary(min_size=0, max_size=200), partitions=st.integers(1, 64))
def test_same_partition_as_the_default_partitioner(key: bytes, partitions: int) -> None:
    all_partitions = list(range(partitions))
    expected = DefaultPartitioner()(key, all_partitions, all_partitions)
    assert cached_murmur2_partitioner(key, all_partitions, all_partitions) == expected
    assert cached_murmur2_partitioner(key, all_partitions, all_partitions) == expected  # cached
