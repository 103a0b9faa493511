"""A server this machine runs for the demo, the tests and the benchmarks (MLflow, Prometheus): started
in its own process group with its output in a log file, yielded once its health URL answers 200, and
stopped with its whole group (SIGTERM, then SIGKILL) when the `with` block ends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def served(name: str, argv: Sequence[str], cwd: Path, log_path: Path, health_url: str, timeout: float,
           poll: float = 0.2) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` until `health_url` answers; an exit or `timeout` first raises with the log's tail."""
    with log_path.open("w") as log:
        process = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   cwd=cwd)
    try:
        deadline = time.monotonic() + timeout
        while not answers(health_url):
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}: {log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not answer {health_url} in {timeout:.0f} s")
            time.sleep(poll)
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
