"""Helpers for integration and e2e tests: bounded waits and real-broker produce/consume."""

from tests.support.kafka import Record, at_least, consume, produce
from tests.support.wait import wait_for

__all__ = ["Record", "at_least", "consume", "produce", "wait_for"]
