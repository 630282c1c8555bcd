"""The default alert rules must fit the models the repository ships, or they never fire."""

import pytest

from healthscore.engine import default_models
from services.alerts.config import OnboardingStalledRule, default_rules
from services.alerts.settings import get_settings


def test_default_usage_categories_match_every_shipped_model() -> None:
    rule = next(r for r in default_rules() if isinstance(r, OnboardingStalledRule))
    wanted = {c.lower() for c in rule.categories}
    for published in default_models():
        names = {c.name.lower() for c in published.model.categories}
        assert names & wanted, f"{published.model_id}: no usage category in {sorted(names)}"


def test_an_empty_slack_variable_means_no_slack_destination(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HEALTHSCORE_SLACK_WEBHOOK_URL", "")
    assert get_settings().slack_webhook_url is None
