"""Benchmark: 1,000 TrainingJobs applied at once through the operator (Kubernetes executor), against the
same child objects created directly by a plain client with the same concurrency.

    .venv/bin/python bench/trainingjob_scale.py [--count 1000] [--concurrency 8]

A local control plane of its own with Loom's CRDs and minimal Kubeflow CRDs (tests/crds/kubeflow; no
Kubeflow controller runs, so the children stay as created), a real MLflow tracking server, and
`loom run --executor kubernetes` reconciling TrainingJobs only (LOOM_CONTROLLERS). One DataLake and one
FeatureSet, their status written here as their controllers would, are what every TrainingJob reads.

- ours: `count` TrainingJobs created by `concurrency` threads; a watch on TrainJobs and one on
  TrainingJobs record when each child is first seen and when each TrainingJob first reports its run
  (status.currentRun). Total: first create -> last report. Latency: a TrainingJob's create returned
  -> its child seen. The operator's RSS (VmRSS from /proc) is sampled every 0.2 s.
- baseline: the same children (each a ConfigMap of its files and a TrainJob, as the operator applies
  them) created in another namespace by a plain client with the same concurrency. Total: first create
  -> last create returned.

Floors (exit code 1 when one fails): total <= 20 s, p99 create->child <= 1 s, peak RSS <= 150 MiB.
Goal: total <= 2x the plain client's.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from _cluster import ROOT, ControlPlane, control_plane, operator

from loom.devcluster.mlflow import mlflow_server

NAMESPACE, BASELINE = "bench-training", "bench-baseline"
KUBEFLOW_CRDS = ROOT / "tests" / "crds" / "kubeflow"
IMAGE = "registry.example.com/loom/main:bench"
FLOOR_TOTAL, FLOOR_P99, FLOOR_RSS_MIB = 20.0, 1.0, 150.0


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.2)


def sample(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "samples" / f"{name}.yaml").read_text()))


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def inputs_ready(plane: ControlPlane, lakes: Path) -> None:
    """The DataLake and FeatureSet every TrainingJob reads, Ready, as their controllers would report."""
    lake = sample("datalake")
    lake["spec"]["catalog"].update(uri=f"sqlite:///{lakes}/catalog.db", warehouse=f"file://{lakes}/warehouse")
    for obj in (lake, sample("featureset")):
        plane.run("apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps(obj))
    ready = [{"type": "Ready", "status": "True", "reason": "Ready", "message": "", "observedGeneration": 1,
              "lastTransitionTime": now()}]
    plane.run("patch", "-n", NAMESPACE, "datalake/movielens", "--subresource=status", "--type=merge", "-p",
              json.dumps({"status": {"conditions": ready, "tables": [
                  {"name": "ratings", "currentSnapshotId": 2}, {"name": "movies", "currentSnapshotId": 3}]}}))
    plane.run("patch", "-n", NAMESPACE, "featureset/user-features", "--subresource=status", "--type=merge", "-p",
              json.dumps({"status": {"conditions": ready, "sourceSnapshotId": 1, "featureViewVersion": "v1"}}))


class Watch(threading.Thread):
    """First time each object of a list is seen matching `seen(obj)`."""

    def __init__(self, list_call: Any, seen: Any) -> None:
        super().__init__(daemon=True)
        self.list_call, self.seen, self.times, self.stopped = list_call, seen, {}, False
        self.ready = threading.Event()

    def run(self) -> None:
        w = kubernetes.watch.Watch()
        self.ready.set()
        while not self.stopped:
            for event in w.stream(self.list_call, timeout_seconds=5):
                obj = event["object"]
                name = obj["metadata"]["name"]
                if name not in self.times and self.seen(obj):
                    self.times[name] = time.monotonic()
                if self.stopped:
                    break


def create_all(concurrency: int, items: list[Any], create: Any) -> dict[str, float]:
    done: dict[str, float] = {}

    def one(item: Any) -> None:
        name = create(item)
        done[name] = time.monotonic()

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, items))
    return done


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000, help="TrainingJobs (default 1000)")
    parser.add_argument("--concurrency", type=int, default=8, help="creating threads, ours and baseline alike")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--env", action="append", default=[], metavar="LOOM_X=V",
                        help="an operator setting (repeatable), e.g. LOOM_RECONCILE_WORKERS=32")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="loom-bench-training-") as tmp_dir:
        tmp = Path(tmp_dir)
        with control_plane(tmp / "cluster") as plane, mlflow_server(tmp / "mlflow") as tracking:
            plane.run("apply", "--server-side", "-f", str(KUBEFLOW_CRDS))
            plane.run("wait", "--for=condition=Established", "--timeout=60s", "-f", str(KUBEFLOW_CRDS))
            for ns in (NAMESPACE, BASELINE):
                plane.run("create", "namespace", ns)
            inputs_ready(plane, tmp / "lakes")
            api_client = kubernetes.config.new_client_from_config(config_file=str(plane.kubeconfig))
            api_client.rest_client.pool_manager.connection_pool_kw["maxsize"] = args.concurrency + 4
            custom = kubernetes.client.CustomObjectsApi(api_client)
            core = kubernetes.client.CoreV1Api(api_client)
            env = {"LOOM_CONTROLLERS": '["TrainingJob"]', "LOOM_IMAGE_MAIN": IMAGE,
                   "LOOM_MLFLOW_TRACKING_URI": tracking, **dict(e.split("=", 1) for e in args.env)}
            with operator(plane, tmp / "state", tmp / "operator.log",
                          ("--executor", "kubernetes", "--namespace", NAMESPACE), env=env) as running:
                base_rss = rss_kib(running.pid)
                sampler = Sampler(running.pid)
                sampler.start()
                children = Watch(lambda **kw: custom.list_namespaced_custom_object(
                    "trainer.kubeflow.org", "v1alpha1", NAMESPACE, "trainjobs", **kw), lambda _: True)
                reports = Watch(lambda **kw: custom.list_namespaced_custom_object(
                    "loom.dev", "v1alpha1", NAMESPACE, "trainingjobs", **kw),
                    lambda obj: bool((obj.get("status") or {}).get("currentRun")))
                for w in (children, reports):
                    w.start()
                    w.ready.wait()
                time.sleep(1)

                template = sample("trainingjob")

                def create_tj(i: int) -> str:
                    obj = json.loads(json.dumps(template))
                    obj["metadata"] = {"name": f"recsys-{i:04d}", "namespace": NAMESPACE}
                    custom.create_namespaced_custom_object("loom.dev", "v1alpha1", NAMESPACE, "trainingjobs", obj)
                    return str(obj["metadata"]["name"])

                start = time.monotonic()
                created = create_all(args.concurrency, list(range(args.count)), create_tj)
                deadline = time.monotonic() + args.timeout
                while (len(children.times) < args.count or len(reports.times) < args.count) \
                        and time.monotonic() < deadline:
                    time.sleep(0.2)
                if running.process.poll() is not None:
                    raise RuntimeError(f"the operator exited:\n{running.log_tail()}")
                end = max([*reports.times.values(), *children.times.values()], default=time.monotonic())
                sampler.running = False
                for w in (children, reports):
                    w.stopped = True
                peak_rss, end_rss = sampler.peak, rss_kib(running.pid)
                with urllib.request.urlopen(running.metrics_url, timeout=5) as response:
                    metrics = response.read().decode()
                reconciled = sum(float(m.group(1)) for m in re.finditer(
                    r'^loom_reconcile_total\{kind="TrainingJob",[^}]*\} (\S+)$', metrics, re.M))
                ours_total = end - start
                owner_of = {c["metadata"]["name"]: c["metadata"]["labels"]["loom.dev/trainingjob"] for c in
                            custom.list_namespaced_custom_object("trainer.kubeflow.org", "v1alpha1", NAMESPACE,
                                                                 "trainjobs")["items"]}
                latencies = [children.times[child] - created[owner] for child, owner in owner_of.items()
                             if child in children.times and owner in created]
                # The baseline creates exactly what the operator applied: each child's ConfigMap and TrainJob.
                pairs = []
                for child in custom.list_namespaced_custom_object("trainer.kubeflow.org", "v1alpha1", NAMESPACE,
                                                                  "trainjobs")["items"]:
                    name = child["metadata"]["name"]
                    files = core.read_namespaced_config_map(name, NAMESPACE)
                    pairs.append((
                        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": files.data},
                        {k: v for k, v in child.items() if k not in ("status",)} | {"metadata": {
                            "name": name, "labels": child["metadata"]["labels"]}},
                    ))
            seen_children, seen_reports = len(children.times), len(reports.times)

            def create_pair(pair: tuple[dict[str, Any], dict[str, Any]]) -> str:
                configmap, trainjob = pair
                core.create_namespaced_config_map(BASELINE, configmap)
                custom.create_namespaced_custom_object("trainer.kubeflow.org", "v1alpha1", BASELINE, "trainjobs",
                                                       trainjob)
                return str(configmap["metadata"]["name"])

            base_start = time.monotonic()
            create_all(args.concurrency, pairs, create_pair)
            baseline_total = time.monotonic() - base_start

    p50, p99 = (percentile(latencies, 50), percentile(latencies, 99)) if latencies else (float("nan"),) * 2
    ratio = ours_total / baseline_total
    print(f"\nTrainingJob scale: {args.count} TrainingJobs, concurrency {args.concurrency} "
          f"(children seen {seen_children}, runs reported {seen_reports}, {reconciled / args.count:.2f} reconciles "
          f"per TrainingJob)")
    print(f"| {'measure':<44} | {'Loom':>10} | {'plain client':>12} | {'ratio':>6} | floor |")
    print(f"|{'-' * 46}|{'-' * 12}|{'-' * 14}|{'-' * 8}|-------|")
    print(f"| {'total: first create -> all children/reports':<44} | {ours_total:>9.1f}s | {baseline_total:>11.1f}s "
          f"| {ratio:>5.2f}x | <= {FLOOR_TOTAL:.0f} s |")
    print(f"| {'create -> child, p50 / p99':<44} | {p50:>4.2f}/{p99:<4.2f}s | {'':>12} | {'':>6} | p99 <= {FLOOR_P99:.0f} s |")
    print(f"| {'operator RSS: idle / peak / end (MiB)':<44} | {base_rss / 1024:>3.0f}/{peak_rss / 1024:.0f}/"
          f"{end_rss / 1024:.0f} | {'':>12} | {'':>6} | peak <= {FLOOR_RSS_MIB:.0f} |")
    failed = [what for what, bad in (
        ("children", seen_children < args.count or seen_reports < args.count),
        ("total", ours_total > FLOOR_TOTAL), ("p99", p99 > FLOOR_P99),
        ("rss", peak_rss / 1024 > FLOOR_RSS_MIB)) if bad]
    print("floors: " + ("all hold" if not failed else "FAILED: " + ", ".join(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
