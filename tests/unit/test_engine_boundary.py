"""The engine is pure: no Kafka, database, HTTP, metrics, logging, os, time or asyncio imports."""

from __future__ import annotations

import ast
from pathlib import Path

import healthscore.engine

FORBIDDEN = frozenset(
    {
        "faust",
        "aiokafka",
        "fastapi",
        "sqlalchemy",
        "prometheus_client",
        "logging",
        "os",
        "time",
        "asyncio",
        "httpx",
    }
)
ENGINE_DIR = Path(healthscore.engine.__file__).parent


def _imported_roots(tree: ast.AST) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_engine_modules_exist() -> None:
    assert len(list(ENGINE_DIR.rglob("*.py"))) >= 5


def test_engine_imports_nothing_impure() -> None:
    offenders = {}
    for path in sorted(ENGINE_DIR.rglob("*.py")):
        bad = _imported_roots(ast.parse(path.read_text(encoding="utf-8"))) & FORBIDDEN
        if bad:
            offenders[str(path.relative_to(ENGINE_DIR))] = sorted(bad)
    assert offenders == {}


def test_the_check_catches_forbidden_imports() -> None:
    sample = (
        "import os.path\nfrom time import monotonic\nfrom aiokafka.errors import X\nimport json\n"
    )
    assert _imported_roots(ast.parse(sample)) & FORBIDDEN == {"os", "time", "aiokafka"}


def test_default_models_is_the_function_even_after_loading_the_yaml_files() -> None:
    from healthscore import engine

    assert callable(engine.default_models)
    assert engine.default_models()
    assert callable(engine.default_models)
