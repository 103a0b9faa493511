"""Specs the unit tests of several services start from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loom.api.datalake import DataLakeSpec


def sqlite_lake(tmp_path: Path, **changes: Any) -> DataLakeSpec:
    """A DataLake of two tables over a SQLite catalog in `tmp_path`, its credentials in a Secret."""
    return DataLakeSpec.model_validate({
        "catalog": {"type": "sql", "uri": f"sqlite:///{tmp_path}/catalog.db", "warehouse": f"file://{tmp_path}/wh",
                    "secretRef": {"name": "lake-credentials"}},
        "namespace": "movielens",
        "tables": [
            {"name": "ratings", "columns": [{"name": "userId", "type": "long", "required": True}]},
            {"name": "movies", "columns": [{"name": "movieId", "type": "long", "required": True}]},
        ],
        **changes,
    })
