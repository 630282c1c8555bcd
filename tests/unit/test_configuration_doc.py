"""docs/configuration.md is generated from the settings classes and must not drift from them."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "configuration_doc.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("configuration_doc", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_document_matches_the_settings_classes() -> None:
    generator = _generator()
    assert generator.DOC.read_text() == generator.render(), (
        "docs/configuration.md is stale: run .venv/bin/python scripts/configuration_doc.py"
    )


def test_every_setting_says_what_it_means() -> None:
    undocumented = [
        line.split("|")[1].strip()
        for line in _generator().render().splitlines()
        if line.startswith("| `") and line.rstrip().endswith("|  |")
    ]
    assert undocumented == []
