"""What the operator process loads before it has seen a single object: the CLI, the handlers, a
registry for each executor and both executors' modules. The libraries of the driven systems (Iceberg,
Arrow, Feast, MLflow, torch) arrive with the first object that needs them, so an operator with only
TrainingJobs and InferenceServices never holds them. A fresh interpreter, so nothing imported by
other tests counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Each costs tens of MiB (Feast several hundred with what it pulls in); none is needed at start-up.
HEAVY = ("pyiceberg", "pyarrow", "pandas", "numpy", "feast", "sqlalchemy", "mlflow", "torch", "duckdb", "pyspark")
# Peak RSS measured at 102 MiB (of which kopf and the kubernetes client it imports ~75 MiB); the
# same start-up loading pyiceberg, pyarrow and numpy peaked at 198 MiB.
RSS_LIMIT_MIB = 125

STARTUP = """
import json, sys
from loom import cli
from loom.config import ExecutorKind, OperatorConfig
from loom.handlers import build_registry
import loom.executors.kubernetes, loom.executors.local

cli.parser()
for executor in ExecutorKind:
    build_registry(OperatorConfig(executor=executor))
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"modules": sorted(sys.modules), "hwm_kib": int(hwm.split()[1])}))
"""


def startup() -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", STARTUP], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          check=True)
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_startup_loads_no_library_of_the_driven_systems() -> None:
    loaded = startup()
    modules = loaded["modules"]
    assert isinstance(modules, list)
    heavy = sorted({name.split(".")[0] for name in modules} & set(HEAVY))
    assert heavy == [], f"imported at start-up: {heavy}; see `python -X importtime -c 'import loom.handlers'`"
    hwm_mib = int(str(loaded["hwm_kib"])) / 1024
    print(f"operator start-up peak RSS {hwm_mib:.1f} MiB (limit {RSS_LIMIT_MIB})")
    assert hwm_mib < RSS_LIMIT_MIB
