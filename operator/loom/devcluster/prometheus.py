"""A real Prometheus server on this machine (Debian's `prometheus`), for the demo and the tests: it
scrapes the local router and model servers, and the canary analysis runs its PromQL against it.

Its configuration, data and log live in one directory. Targets are a file_sd JSON file next to the
configuration, which Prometheus watches: `write_targets` replaces it (atomically) when revisions come
and go, with no restart or reload. Prometheus hands discovered targets to its scrapers every 5 s, so a
new target (the first ones too) is scraped about 5 s after it is written. The scrape interval is short
(1 s by default) so a test's traffic is in Prometheus a second or two after it ends. Scraped labels
win over the target's (`honor_labels`), so a router's own `revision` label is kept and the target's
labels (namespace, inferenceservice, ...) fill in the rest. `--web.enable-lifecycle` lets whoever edits
prometheus.yml by hand apply it with `POST /-/reload`."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from loom.devcluster.served import free_port, served

TARGETS_FILE = "targets.json"
JOB = "loom"


@dataclass(frozen=True)
class ScrapeTarget:
    """One `host:port` serving /metrics, and the labels its series get (e.g. namespace, revision)."""

    address: str
    labels: Mapping[str, str] = field(default_factory=dict)


def write_targets(directory: Path, targets: Sequence[ScrapeTarget]) -> None:
    """Replace the scraped targets; Prometheus picks the new file up by itself."""
    groups = [{"targets": [t.address], "labels": dict(t.labels)} for t in targets]
    new = directory / f"{TARGETS_FILE}.new"
    new.write_text(json.dumps(groups, indent=1))
    os.replace(new, directory / TARGETS_FILE)


def _write_config(directory: Path, scrape_interval: str) -> Path:
    """prometheus.yml (as JSON, which is YAML): one job reading its targets from the targets file."""
    config = {
        "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                   "evaluation_interval": scrape_interval},
        "scrape_configs": [{
            "job_name": JOB,
            "honor_labels": True,
            "file_sd_configs": [{"files": [str(directory / TARGETS_FILE)], "refresh_interval": "5s"}],
        }],
    }
    path = directory / "prometheus.yml"
    path.write_text(json.dumps(config, indent=1))
    return path


@contextmanager
def prometheus_server(directory: Path, targets: Sequence[ScrapeTarget] = (), scrape_interval: str = "1s",
                      port: int | None = None, timeout: float = 60) -> Iterator[str]:
    """Yield the server's URL once /-/ready answers; its output goes to directory/prometheus.log."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).exists():
        raise FileNotFoundError("prometheus is not installed: run `make system-deps` (Debian package prometheus)")
    directory.mkdir(parents=True, exist_ok=True)
    write_targets(directory, targets)
    config = _write_config(directory, scrape_interval)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={directory / 'data'}", "--web.enable-lifecycle"]
    with served("prometheus", argv, directory, directory / "prometheus.log", f"{url}/-/ready", timeout):
        yield url
