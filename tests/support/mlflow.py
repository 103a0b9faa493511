"""A real MLflow tracking server for tests: `mlflow server` over a SQLite store in a temporary
directory, on a free port, stopped with its process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.conftest import eventually


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mlflow_server(directory: Path) -> Iterator[str]:
    """Yield the server's URL once /health answers; its output is in directory/server.log."""
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    log = (directory / "server.log").open("w")
    process = subprocess.Popen(
        [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{directory / 'mlflow.db'}",
         "--default-artifact-root", (directory / "artifacts").as_uri(), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=directory,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.poll() is None, (directory / "server.log").read_text()[-2000:]
        try:
            return requests.get(f"{url}/health", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        eventually(healthy, timeout=120, interval=0.5, what="the MLflow server answering /health")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
