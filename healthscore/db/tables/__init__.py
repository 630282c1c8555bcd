"""Table declarations, one module per domain (api_keys, health_models, scores, alerts, ...).

Every module here declares its tables on :data:`healthscore.db.base.metadata`. This package
imports none of them by name, so a domain's module can be added without touching this file;
:func:`load_all` imports whichever exist (Alembic's env.py calls it for autogenerate).
"""

from __future__ import annotations

import importlib
import pkgutil

from sqlalchemy import MetaData

from healthscore.db.base import metadata


def load_all() -> MetaData:
    """Import every table module in this package and return the shared metadata."""
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    return metadata
