"""Benchmark: `kubectl apply` of one DataLake with 50 tables until Ready, against creating the same 50
tables with plain pyiceberg calls in one process.

    .venv/bin/python bench/datalake_reconcile.py [--tables 50] [--runs 5]

Both sides use a fresh SQLite-backed SQL catalog per run. The operator side runs on a local control
plane of its own (etcd + kube-apiserver, started here, stopped at the end) with the operator as a
separate `loom run` process that is already up; the clock starts before `kubectl apply` and stops
when the object reports Ready=True for its generation (seen through a watch). The
baseline opens the catalog, creates the namespace and the 50 tables (schema, partition spec, sort
order) with `create_table`. Prints each side's median, the runs, and the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import kubernetes
import kubernetes.watch
import yaml
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.table.sorting import NullOrder, SortDirection, SortField, SortOrder
from pyiceberg.transforms import IdentityTransform, parse_transform

from loom import devcluster
from loom.api.datalake import Table
from loom.api.meta import GROUP, VERSION
from loom.devcluster.served import free_port
from loom.drivers.iceberg_catalog import open_catalog
from loom.drivers.iceberg_tables import schema_for

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "bench"


def declared_tables(n: int) -> list[dict[str, Any]]:
    """The sample's three tables, cycled to n, with their partitioning and sort order."""
    sample = yaml.safe_load((ROOT / "samples" / "datalake.yaml").read_text())["spec"]["tables"]
    tables = []
    for i in range(n):
        table = dict(sample[i % len(sample)])
        table["name"] = f"{table['name']}_{i:03d}"
        tables.append(table)
    return tables


def plain_pyiceberg(tables: list[dict[str, Any]], workdir: Path) -> float:
    """The same tables by hand: one process, one catalog, `create_table` per table."""
    started = time.perf_counter()
    catalog = open_catalog("default", {
        "type": "sql", "uri": f"sqlite:///{workdir}/catalog.db", "warehouse": f"file://{workdir}/warehouse"})
    catalog.create_namespace("movielens")
    for raw in tables:
        table = Table.model_validate(raw)
        schema = schema_for(table.columns)
        spec = PartitionSpec(*(
            PartitionField(schema.find_field(p.column).field_id, 1000 + i, parse_transform(p.transform),
                           p.name or f"{p.column}_{p.transform}")
            for i, p in enumerate(table.partition_by)))
        order = SortOrder(*(
            SortField(schema.find_field(s.column).field_id, IdentityTransform(), SortDirection.ASC, NullOrder.NULLS_FIRST)
            for s in table.sort_by))
        catalog.create_table(("movielens", table.name), schema, partition_spec=spec, sort_order=order,
                             properties=table.properties)
    catalog.close()
    return time.perf_counter() - started


def is_ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status", {})
    if status.get("observedGeneration") != obj["metadata"]["generation"]:
        return False
    ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)
    if ready is not None and ready["status"] == "False" and ready["reason"] != "Pending":
        raise RuntimeError(f"DataLake {obj['metadata']['name']} failed: {ready['message']}")
    return ready is not None and ready["status"] == "True"


def through_operator(tables: list[dict[str, Any]], workdir: Path, run: int, kubectl: list[str],
                     api: kubernetes.client.CustomObjectsApi) -> float:
    name = f"lake-{run}"
    manifest = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "DataLake", "metadata": {"name": name},
        "spec": {"catalog": {"type": "sql", "uri": f"sqlite:///{workdir}/catalog.db",
                             "warehouse": f"file://{workdir}/warehouse"},
                 "namespace": "movielens", "tables": tables},
    }
    started = time.perf_counter()
    subprocess.run([*kubectl, "apply", "-f", "-"], input=yaml.safe_dump(manifest), text=True, check=True,
                   capture_output=True)
    # A watch from the object as it is now: no polling load on the two processes measured, and the
    # status write that says Ready is seen when it happens, not up to a poll interval later.
    watch = kubernetes.watch.Watch()
    for event in watch.stream(api.list_namespaced_custom_object, GROUP, VERSION, NAMESPACE, "datalakes",
                              field_selector=f"metadata.name={name}", timeout_seconds=300):
        if is_ready(event["object"]):
            watch.stop()
            break
    else:
        raise TimeoutError(f"DataLake {name} not Ready after 300 s")
    elapsed = time.perf_counter() - started
    subprocess.run([*kubectl, "delete", "datalake", name, "--wait=true"], check=True, capture_output=True)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tables = declared_tables(args.tables)

    work = Path(tempfile.mkdtemp(prefix="loom-bench-lake-"))
    cluster = devcluster.up(work / "controlplane")
    kubectl = [str(cluster.bin_dir / "kubectl") if cluster.bin_dir else "kubectl", "--kubeconfig", str(cluster.kubeconfig)]
    subprocess.run([*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")], check=True,
                   capture_output=True)
    subprocess.run([*kubectl, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds")],
                   check=True, capture_output=True)
    subprocess.run([*kubectl, "create", "namespace", NAMESPACE], check=True, capture_output=True)
    kubectl += ["--namespace", NAMESPACE]
    api = kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(str(cluster.kubeconfig)))
    log = (work / "operator.log").open("w")
    operator = subprocess.Popen(
        [sys.executable, "-m", "loom.cli", "run", "--namespace", NAMESPACE, "--metrics-port", "0",
         "--liveness", f"http://127.0.0.1:{free_port()}/healthz"],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}, stdout=log, stderr=subprocess.STDOUT,
    )
    plain: list[float] = []
    loom: list[float] = []
    try:
        # A warm-up of each side, so operator start-up and first imports are in neither's first run.
        through_operator(tables[:1], work / "warmup", 0, kubectl, api)
        plain_pyiceberg(tables[:1], work / "warmup-plain")
        for run in range(1, args.runs + 1):
            contenders = [("plain", plain), ("loom", loom)]
            for label, results in contenders if run % 2 else reversed(contenders):
                workdir = work / f"{label}-{run}"
                if label == "plain":
                    results.append(plain_pyiceberg(tables, workdir))
                else:
                    results.append(through_operator(tables, workdir, run, kubectl, api))
    finally:
        operator.terminate()
        operator.wait(timeout=30)
        log.close()
        devcluster.down(work / "controlplane", purge=True)
        shutil.rmtree(work, ignore_errors=True)

    p, o = statistics.median(plain), statistics.median(loom)
    print(f"{args.tables} tables, {args.runs} runs (median)")
    print(f"  plain pyiceberg, one process:      {p:7.3f} s   runs: {', '.join(f'{x:.3f}' for x in plain)}")
    print(f"  kubectl apply -> Ready (operator): {o:7.3f} s   runs: {', '.join(f'{x:.3f}' for x in loom)}")
    print(f"  ratio operator / plain:            {o / p:7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
