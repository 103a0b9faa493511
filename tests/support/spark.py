"""Whether Spark can run Iceberg here: Iceberg ships a Spark runtime per Spark minor, so with any
other pyspark the Spark tests are skipped, with the reason."""

from __future__ import annotations

import pyspark
import pytest

from loom.drivers import spark as spark_driver


def _missing_runtime() -> str:
    """Why Spark cannot run Iceberg with the installed pyspark ("" when it can)."""
    try:
        spark_driver.iceberg_runtime(pyspark.__version__)
    except RuntimeError as exc:
        return str(exc)
    return ""


needs_iceberg_runtime = pytest.mark.skipif(bool(_missing_runtime()), reason=_missing_runtime())
