"""A real MLflow tracking server on this machine, for the demo, the tests and the benchmarks:
`mlflow server` over a SQLite store and a file artifact root in one directory, on a loopback port,
stopped with its process group when the `with` block ends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def mlflow_server(directory: Path, port: int | None = None, timeout: float = 120) -> Iterator[str]:
    """Yield the server's URL once /health answers; its output goes to directory/server.log."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    log_path = directory / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{directory / 'mlflow.db'}",
             "--default-artifact-root", (directory / "artifacts").as_uri(), "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=directory,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(url):
            if process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {process.returncode}: {log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"mlflow server did not answer /health in {timeout:.0f} s")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
