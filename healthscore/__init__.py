"""Healthscore: real-time customer health scoring."""

__version__ = "0.1.0"
