"""IngestSettings: environment names, limits, and no secret in validation errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.ingest.settings import IngestSettings, get_settings


def test_environment_is_read_by_get_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTHSCORE_BOOTSTRAP_API_KEY", "boot-secret")
    monkeypatch.setenv("HEALTHSCORE_INGEST_RATE_LIMIT", "50")
    monkeypatch.setenv("HEALTHSCORE_TOPIC_PREFIX", "p.")
    settings = get_settings()
    assert settings.bootstrap_api_key is not None
    assert settings.bootstrap_api_key.get_secret_value() == "boot-secret"
    assert "boot-secret" not in repr(settings)
    assert settings.rate_limit_per_second == 50
    assert settings.topics.event("usage") == "p.events.usage"
    assert settings.max_body_bytes == 5 * 1024 * 1024


def test_burst_must_hold_a_full_batch_and_errors_hide_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HEALTHSCORE_BOOTSTRAP_API_KEY", "boot-secret")
    monkeypatch.setenv("HEALTHSCORE_INGEST_RATE_BURST", "10")
    with pytest.raises(ValidationError) as caught:
        get_settings()
    assert "at least the batch limit" in str(caught.value)
    assert "boot-secret" not in str(caught.value)
    assert IngestSettings(rate_limit_burst=10, max_batch_items=10).rate_limit_burst == 10
