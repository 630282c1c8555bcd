"""Write docs/configuration.md from the services' settings classes.

The settings classes are the source of truth for every environment variable a service reads;
``tests/unit/test_configuration_doc.py`` fails when the document and the classes drift. Run
``.venv/bin/python scripts/configuration_doc.py`` after changing a setting.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from healthscore.config import CommonSettings
from services.alerts.settings import AlertsSettings
from services.api.settings import ApiSettings
from services.ingest.settings import IngestSettings
from services.scorer.settings import ScorerSettings

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"

SECTIONS: tuple[tuple[str, type[BaseSettings]], ...] = (
    ("Every service", CommonSettings),
    ("`healthscore ingest`", IngestSettings),
    ("`healthscore scorer`", ScorerSettings),
    ("`healthscore alerts`", AlertsSettings),
    ("`healthscore api`", ApiSettings),
)

HEADER = """# Configuration

Every service reads its settings from the environment (pydantic-settings; an empty variable
counts as unset). Secrets (`SecretStr`) are never logged or echoed in errors. This file is
generated from the settings classes by `scripts/configuration_doc.py`; a test fails when they
drift.

Besides these, `healthscore local` and the test fixtures read `HEALTHSCORE_CACHE_DIR` (where the
Kafka jars are cached, default `~/.cache/healthscore`), the simulator reads `HEALTHSCORE_API_KEY`
(falling back to `HEALTHSCORE_BOOTSTRAP_API_KEY`), and the tests read `CI` (with `CI=true` a
missing broker or database is an error, never a skip).
"""


def _default(info: FieldInfo) -> str:
    if info.default is PydanticUndefined:
        return "required"
    if info.default is None:
        return "unset"
    value = info.default
    if value == "":
        return "empty"
    if isinstance(value, tuple | list):
        value = ",".join(str(v) for v in value)
    return f"`{value}`"


def _rows(cls: type[BaseSettings], inherited: set[str]) -> list[str]:
    rows = []
    for info in cls.model_fields.values():
        alias = info.validation_alias
        if not isinstance(alias, str) or alias in inherited:
            continue
        secret = " (secret)" if "SecretStr" in str(info.annotation) else ""
        description = (info.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{alias}`{secret} | {_default(info)} | {description} |")
    return rows


def render() -> str:
    common = {
        info.validation_alias
        for info in CommonSettings.model_fields.values()
        if isinstance(info.validation_alias, str)
    }
    parts = [HEADER]
    for title, cls in SECTIONS:
        inherited = set() if cls is CommonSettings else common
        parts.append(f"\n## {title}\n\n| variable | default | meaning |\n|---|---|---|")
        parts.extend(_rows(cls, inherited))
    return "\n".join(parts) + "\n"


def env_names() -> set[str]:
    """Every environment variable any service's settings read."""
    return {
        info.validation_alias
        for _, cls in SECTIONS
        for info in cls.model_fields.values()
        if isinstance(info.validation_alias, str)
    }


if __name__ == "__main__":
    DOC.write_text(render())
    sys.stdout.write(f"wrote {DOC}\n")
