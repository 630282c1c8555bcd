"""Sentiment of customer text with VADER, whose lexicon ships inside the vaderSentiment package.

The analyzer is created on first use (it reads its lexicon once), never at import time. Only the
compound score (-1..1) leaves this module; the text itself is never stored.
"""

from __future__ import annotations

from functools import cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


@cache
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def compound(text: str) -> float:
    """VADER's normalised compound score of ``text``: -1 most negative, +1 most positive."""
    return float(_analyzer().polarity_scores(text)["compound"])
