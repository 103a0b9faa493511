"""No write without a change: one object of every kind, reconciled by the real operator against the
real API server, is not written to across an operator restart and while a schedule ticks and
resyncs run, unless what it reports changed. A watch records every modification: none may touch
only metadata (a nudge, Kopf bookkeeping), objects without runs are not modified at all, and the
DataLake's status moves only to report its scheduled runs."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.integration.conftest import Kubectl, condition, eventually, sample, start_operator
from tests.integration.datalake.test_ingest import ratings

KINDS = ("datalakes", "featuresets", "trainingjobs", "inferenceservices")
# Long enough for two schedule ticks (every minute) and several resyncs; `make fuzz`-sized runs
# set it to the ten minutes.
QUIET_SECONDS = float(os.environ.get("LOOM_QUIET_SECONDS", "150"))
RESYNC_SECONDS = 20.0


class Watch:
    """`kubectl get <kind> --watch` with every event, as JSON, collected in the background."""

    def __init__(self, kc: Kubectl, kind: str, out: Path) -> None:
        self.out = out
        self.file = out.open("w")
        cmd = [kc.binary, "--kubeconfig", str(kc.kubeconfig), "--namespace", str(kc.namespace), "get", kind,
               "--watch-only", "--output-watch-events", "-o", "json"]
        self.proc = subprocess.Popen(cmd, stdout=self.file, stderr=subprocess.STDOUT, text=True)

    def stop(self) -> list[dict[str, Any]]:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.file.close()
        text, decoder, events, at = self.out.read_text(), json.JSONDecoder(), [], 0
        while (at := _skip_space(text, at)) < len(text):
            event, at = decoder.raw_decode(text, at)
            events.append(event)
        return events


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


@pytest.fixture
def watches(kc: Kubectl, tmp_path: Path) -> Iterator[dict[str, Watch]]:
    started: dict[str, Watch] = {}
    yield started
    for watch in started.values():
        if watch.proc.poll() is None:
            watch.proc.kill()


def _settled(kc: Kubectl) -> dict[str, dict[str, Any]]:
    """Every object has Ready for its generation, and the DataLake reported its first scheduled run."""
    objects = {}
    for kind in KINDS:
        (obj,) = json.loads(kc.run("get", kind, "-o", "json").stdout)["items"]
        ready = condition(obj, "Ready")
        assert ready is not None and ready["observedGeneration"] == obj["metadata"]["generation"], (kind, obj)
        objects[kind] = obj
    table = next(t for t in objects["datalakes"]["status"]["tables"] if t["name"] == "ratings")
    assert table.get("lastIngest", {}).get("rows") == 100, objects["datalakes"]["status"]
    return objects


def _metadata_only(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return before.get("spec") == after.get("spec") and before.get("status") == after.get("status")


def test_no_object_is_written_without_a_change_over_a_restart_and_ticking_schedules(
    kc: Kubectl, namespace: str, tmp_path: Path, watches: dict[str, Watch],
) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    pq.write_table(ratings(0, 100), incoming / "a.parquet")
    lake = sample("datalake")
    lake["spec"]["ingest"] = [{"name": "ratings", "table": "ratings", "schedule": "* * * * *",
                               "source": {"format": "parquet", "uri": f"file://{incoming}/*.parquet"}}]
    lake["spec"].pop("maintenance")
    manifests = [lake, sample("featureset"), sample("trainingjob"), sample("inferenceservice")]
    first = start_operator(namespace, resync_seconds=RESYNC_SECONDS)
    with first.runner:
        for manifest in manifests:
            kc.apply(manifest)
        eventually(lambda: _settled(kc), timeout=180, interval=1, what="every object settled")
        last: list[dict[str, dict[str, Any]]] = []

        def unchanged() -> dict[str, dict[str, Any]]:
            """The same objects as at the previous look (dependents have caught up with each other)."""
            now = _settled(kc)
            versions = {kind: obj["metadata"]["resourceVersion"] for kind, obj in now.items()}
            same = bool(last) and versions == {k: o["metadata"]["resourceVersion"] for k, o in last[-1].items()}
            last.append(now)
            return now if same else {}

        settled = eventually(unchanged, timeout=120, interval=5, what="every object at rest")
    assert first.runner.exception is None, first.runner.output

    for kind in KINDS:
        watches[kind] = Watch(kc, kind, tmp_path / f"{kind}.json")
    second = start_operator(namespace, resync_seconds=RESYNC_SECONDS)
    with second.runner:
        time.sleep(QUIET_SECONDS)  # the window under observation: the operator runs, nothing changes
    assert second.runner.exception is None, second.runner.output

    modified: dict[str, list[dict[str, Any]]] = {}
    for kind, watch in watches.items():
        previous = settled[kind]
        modified[kind] = []
        for event in watch.stop():
            assert event["type"] == "MODIFIED", (kind, event["type"])
            obj = event["object"]
            assert not _metadata_only(previous, obj), (
                f"{kind}: written without a change: {json.dumps(obj['metadata'].get('annotations'))}")
            modified[kind].append(obj)
            previous = obj

    # Nothing about the objects without runs changed, so they were not written to at all.
    for kind in ("featuresets", "trainingjobs", "inferenceservices"):
        assert modified[kind] == [], f"{kind} modified: {[o['status'] for o in modified[kind]]}"
    # The DataLake reported its ticks' runs (at most a start and an end per tick), nothing else.
    lake_writes = modified["datalakes"]
    assert len(lake_writes) <= 2 * (QUIET_SECONDS // 60 + 1), [o["status"] for o in lake_writes]
    for obj in lake_writes:
        assert obj["metadata"]["generation"] == settled["datalakes"]["metadata"]["generation"]
        assert "last scheduled run" in condition(obj, "Ingested")["message"] or "running" in condition(
            obj, "Ingested")["message"], obj["status"]
