"""A real Prometheus server on this machine (Debian's `prometheus`), for the demo and the tests: it
scrapes the local router and model servers, and the canary analysis runs its PromQL against it.

Its configuration, data and log live in one directory. Targets are file_sd JSON files in its
`targets/` directory, which Prometheus watches: `drivers.prometheus.write_targets` replaces one
(atomically) when revisions come and go, with no restart or reload; the operator writes one per
InferenceService there (LOOM_PROMETHEUS_TARGETS_DIR), a caller its own under another name.
Prometheus hands discovered targets to its scrapers every 5 s, so a
new target (the first ones too) is scraped about 5 s after it is written. The scrape interval is short
(1 s by default) so a test's traffic is in Prometheus a second or two after it ends. Scraped labels
win over the target's (`honor_labels`), so a router's own `revision` label is kept and the target's
labels (namespace, inferenceservice, ...) fill in the rest. `--web.enable-lifecycle` lets whoever edits
prometheus.yml by hand apply it with `POST /-/reload`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from loom.devcluster.served import free_port, served
from loom.drivers.prometheus import ScrapeTarget, write_targets

TARGETS_DIR = "targets"
# The targets file of the caller of `prometheus_server` (the operator's are named by their object).
STATIC_TARGETS = "static"
JOB = "loom"


def targets_dir(directory: Path) -> Path:
    """Where the Prometheus of `directory` reads its file_sd targets."""
    return directory / TARGETS_DIR


def write_config(directory: Path, scrape_interval: str) -> Path:
    """prometheus.yml (as JSON, which is YAML): one job reading its targets from the targets files."""
    config = {
        "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                   "evaluation_interval": scrape_interval},
        "scrape_configs": [{
            "job_name": JOB,
            "honor_labels": True,
            "file_sd_configs": [{"files": [str(targets_dir(directory) / "*.json")], "refresh_interval": "5s"}],
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
    targets_dir(directory).mkdir(parents=True, exist_ok=True)
    write_targets(targets_dir(directory), STATIC_TARGETS, targets)
    config = write_config(directory, scrape_interval)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={directory / 'data'}", "--web.enable-lifecycle"]
    with served("prometheus", argv, directory, directory / "prometheus.log", f"{url}/-/ready", timeout):
        yield url
