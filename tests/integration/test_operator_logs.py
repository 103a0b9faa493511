"""`loom run` as a process against the real API server: its log lines carry a UTC timestamp, the level
and the object they are about, in the format LOOM_LOG_FORMAT chooses."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from loom import devcluster
from tests.integration.conftest import Kubectl, eventually, free_port, sample

TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def _resting_lake() -> dict:
    """The DataLake sample with nothing to run: one reconcile creates its tables and logs about it."""
    lake = sample("datalake")
    lake["spec"]["ingest"] = []
    lake["spec"].pop("maintenance")
    return lake


def _run_operator(namespace: str, log_format: str, state_dir: Path, output: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, LOOM_LOG_FORMAT=log_format, LOOM_EXECUTOR="local", LOOM_METRICS_PORT="0",
               LOOM_STATE_DIR=str(state_dir))  # KUBECONFIG is the test cluster's (set by the cluster fixture)
    args = ["run", "--namespace", namespace, f"--liveness=http://127.0.0.1:{free_port()}/healthz"]
    with output.open("wb") as sink:
        return subprocess.Popen([sys.executable, "-m", "loom.cli", *args], env=env, stdout=sink,
                                stderr=subprocess.STDOUT)


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_lines_about_a_datalake_name_it(log_format: str, kc: Kubectl, namespace: str,
                                        cluster: devcluster.Cluster, tmp_path: Path) -> None:
    output = tmp_path / "operator.log"
    proc = _run_operator(namespace, log_format, tmp_path / "state", output)
    try:
        kc.apply(_resting_lake())

        def about_the_lake() -> list[str]:
            assert proc.poll() is None, output.read_text()
            lines = output.read_text().splitlines()
            if log_format == "plain":
                pattern = re.compile(rf"{TIMESTAMP} (INFO|WARNING|ERROR) +\[DataLake {namespace}/movielens\] \S")
                return [line for line in lines if pattern.match(line)]
            entries = [json.loads(line) for line in lines if line.startswith("{")]
            return [e for e in entries
                    if e.get("object") == {"kind": "DataLake", "namespace": namespace, "name": "movielens"}]

        found = eventually(about_the_lake, timeout=90, what=f"a {log_format} line about the DataLake")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if log_format == "json":
        entry = found[0]
        assert {"timestamp", "level", "logger", "message", "object"} <= set(entry), entry
        assert re.fullmatch(TIMESTAMP, entry["timestamp"]) and entry["level"] in ("INFO", "WARNING", "ERROR"), entry
        assert all(line.startswith("{") for line in output.read_text().splitlines() if line.strip()), \
            "every line is JSON"
