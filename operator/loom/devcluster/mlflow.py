"""A real MLflow tracking server on this machine, for the demo, the tests and the benchmarks:
`mlflow server` over a SQLite store and a file artifact root in one directory, on a loopback port,
stopped with its process group when the `with` block ends."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loom.devcluster.served import free_port, served


@contextmanager
def mlflow_server(directory: Path, port: int | None = None, timeout: float = 120) -> Iterator[str]:
    """Yield the server's URL once /health answers; its output goes to directory/server.log."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    url = f"http://127.0.0.1:{port}"
    argv = [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{directory / 'mlflow.db'}",
            "--default-artifact-root", (directory / "artifacts").as_uri(), "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1"]
    with served("mlflow server", argv, directory, directory / "server.log", f"{url}/health", timeout, poll=0.5):
        yield url
