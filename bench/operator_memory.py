"""Benchmark: the operator's memory (resident set) with 1,000 live objects of each kind, and after they
are all deleted again.

    .venv/bin/python bench/operator_memory.py [--per-kind 1000] [--quick] [--cycles 1] [--kinds trainingjobs,...]

A local control plane of its own (etcd + kube-apiserver, started here, purged at the end) and the real
operator as a separate `loom run --executor local` process, its state in a temp dir. RSS is VmRSS of
the operator process from /proc, sampled every 0.5 s all along (the peak is the largest sample, and the
kernel's own high-water mark VmHWM is printed beside it); processes the operator started (the local
executor's supervisors and workloads) are summed separately.

- before: the operator idle with 0 objects (its liveness endpoint answers and it uses < 10% of a CPU);
- phase A: per index i, a DataLake (its own SQLite catalog, one table, one ingest on a yearly schedule
  that never comes due), a FeatureSet (most name a table the lake does not declare or a lake that does
  not exist; every `--resolved-every`-th names the lake's real table), a TrainingJob naming both, an
  InferenceService naming the TrainingJob or a model URI; applied server-side in batches by
  `--concurrency` kubectl processes; "live" is measured once every object has a status condition and
  the operator has settled;
- phase B: everything deleted (one deletecollection per kind), gone (finalizers done), then at least
  `--settle` seconds and settled: "after"; and what the local executor left under LOOM_STATE_DIR
  (schedules, run dirs, lock files);
- `--cycles n` repeats A and B on the same operator: "after" that grows cycle by cycle is a leak, one
  that stays put is memory the process keeps once it has needed it;
- `--kinds` creates only some of the kinds (their references then name objects that do not exist),
  e.g. `trainingjobs,inferenceservices` for an operator that never needs the lake's libraries.

The packages whose native extensions the operator has mapped (from /proc/<pid>/maps) are printed at
each measurement: they tell which driven systems' libraries (pyarrow, numpy, pandas, ...) it loaded.

Requirements (the exit code is 1 when one fails): live < 250 MiB, after / before <= 1.20, nothing left.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from _cluster import ControlPlane, OperatorProcess, control_plane, operator

from loom.api.meta import API_VERSION, GROUP, VERSION

NAMESPACE = "bench-memory"
PLURALS = ("datalakes", "featuresets", "trainingjobs", "inferenceservices")
MIB = 1024 * 1024
LIVE_LIMIT_MIB = 250.0
AFTER_RATIO_LIMIT = 1.20
YEARLY = "0 0 1 1 *"  # a schedule that stores a workload but starts none during the run
IDLE_CPU = 0.10  # share of one CPU below which the operator counts as settled
IDLE_WINDOW = 10.0  # seconds the share is measured over
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- /proc ------------------------------------------------------------------------------------------


def status_kib(pid: int, key: str) -> int | None:
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM), None once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return 0


def native_packages(pid: int) -> list[str]:
    """Top-level packages under site-packages with a shared library mapped into the process."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return []
    found = re.findall(r"/site-packages/([A-Za-z0-9_]+)[/.]", maps)
    return sorted({name for name in found if not name.endswith("_libs")})


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children of each of its threads, recursively)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
            found += children
            stack += children
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def entries(path: str) -> int:
    """How many entries a /proc directory of the process has (its threads, its open files)."""
    try:
        return sum(1 for _ in Path(path).iterdir())
    except FileNotFoundError:
        return 0


@dataclass(frozen=True)
class Sample:
    at: float
    operator_kib: int
    children: int
    children_kib: int
    threads: int
    fds: int

    def describe(self) -> str:
        return f"{self.threads} threads, {self.fds} open files"


@dataclass
class Sampler:
    """RSS of the operator and, apart, of its descendants, every `interval` seconds on a thread."""

    pid: int
    interval: float = 0.5
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> Sample:
        kids = descendants(self.pid)
        taken = Sample(time.monotonic(), status_kib(self.pid, "VmRSS") or 0, len(kids),
                       sum(status_kib(k, "VmRSS") or 0 for k in kids), entries(f"/proc/{self.pid}/task"),
                       entries(f"/proc/{self.pid}/fd"))
        self.samples.append(taken)
        return taken

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def peak(self) -> Sample:
        return max(self.samples, key=lambda s: s.operator_kib)

    def peak_children(self) -> Sample:
        return max(self.samples, key=lambda s: s.children_kib)


def settle(running: OperatorProcess, timeout: float) -> tuple[bool, float]:
    """Wait until the operator used less than IDLE_CPU of a CPU over the last IDLE_WINDOW seconds.
    Returns whether it did before `timeout`, and its CPU share over the last window."""
    history: list[tuple[float, float]] = [(time.monotonic(), cpu_seconds(running.pid))]
    deadline = history[0][0] + timeout
    share = 1.0
    while True:
        time.sleep(1.0)
        alive(running)
        history.append((time.monotonic(), cpu_seconds(running.pid)))
        old = next((h for h in reversed(history) if history[-1][0] - h[0] >= IDLE_WINDOW), None)
        if old is not None:
            share = (history[-1][1] - old[1]) / (history[-1][0] - old[0])
            if share < IDLE_CPU:
                return True, share
        if history[-1][0] > deadline:
            return False, share


def alive(running: OperatorProcess) -> None:
    if running.process.poll() is not None:
        raise RuntimeError(f"the operator exited with {running.process.returncode}:\n{running.log_tail()}")


# --- objects ----------------------------------------------------------------------------------------


def manifests(i: int, lakes: Path, resolved_every: int) -> list[dict[str, Any]]:
    """The four objects of index i; references resolve to objects that exist but are not Ready, to
    objects that do not exist, or (every `resolved_every`-th FeatureSet) to a real lake table."""
    lake, fs, tj, inf = f"lake-{i:05d}", f"fs-{i:05d}", f"tj-{i:05d}", f"is-{i:05d}"
    where = lakes / f"{i:05d}"
    resolved = resolved_every > 0 and i % resolved_every == 0

    def obj(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": spec}

    if resolved:
        source = {"name": lake, "table": "events"}
    elif i % 2:
        source = {"name": lake, "table": "undeclared"}
    else:
        source = {"name": f"no-lake-{i:05d}", "table": "events"}
    return [
        obj("DataLake", lake, {
            "catalog": {"type": "sql", "uri": f"sqlite:///{where}/catalog.db", "warehouse": f"file://{where}/warehouse"},
            "namespace": "bench",
            "tables": [{"name": "events", "columns": [
                {"name": "userId", "type": "long", "required": True},
                {"name": "value", "type": "double"},
                {"name": "ts", "type": "timestamptz", "required": True}]}],
            "ingest": [{"name": "events", "table": "events", "schedule": YEARLY,
                        "source": {"format": "parquet", "uri": f"file://{where}/incoming/*.parquet"}}],
        }),
        obj("FeatureSet", fs, {
            "source": {"dataLakeRef": source, "timestampField": "ts"},
            "entities": [{"name": "user", "joinKeys": ["userId"], "valueType": "INT64"}],
            "features": [{"name": "value", "dtype": "Float64"}],
            "online": {"enabled": True, "store": "sqlite"},
            "materialization": {"schedule": YEARLY},
        }),
        obj("TrainingJob", tj, {
            "dataset": {"featureSetRef": {"name": fs},
                        "labels": {"dataLakeRef": {"name": lake, "table": "events"}, "labelField": "value",
                                   "timestampField": "ts"}},
            "model": {"name": f"model-{i:05d}", "entrypoint": "two_tower"},
        }),
        obj("InferenceService", inf, {
            "model": {"trainingJobRef": {"name": tj}} if i % 2 == 0 else {"uri": f"models:/model-{i:05d}@champion"},
        }),
    ]


def plural(manifest: dict[str, Any]) -> str:
    return f"{manifest['kind'].lower()}s"


def create_all(plane: ControlPlane, per_kind: int, lakes: Path, batch: int, concurrency: int,
               resolved_every: int, kinds: tuple[str, ...]) -> None:
    """Server-side apply, `batch` indexes (one object of each kind) per kubectl, `concurrency` kubectls
    at once."""

    def apply(start: int) -> None:
        docs = [m for i in range(start, min(start + batch, per_kind)) for m in manifests(i, lakes, resolved_every)
                if plural(m) in kinds]
        plane.run("apply", "--server-side", "--field-manager=bench", "-f", "-", stdin=yaml.safe_dump_all(docs))

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(apply, range(0, per_kind, batch)))


def listed(api: kubernetes.client.CustomObjectsApi, kinds: tuple[str, ...]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    for kind in kinds:
        yield kind, api.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, kind)["items"]


def wait_for(what: str, check: Callable[[], tuple[bool, str]], sampler: Sampler, running: OperatorProcess,
             timeout: float) -> float:
    """Poll `check` every 5 s (progress on stderr) until it holds; returns the seconds it took."""
    started = time.monotonic()
    while True:
        done, progress = check()
        alive(running)
        elapsed = time.monotonic() - started
        rss = sampler.samples[-1].operator_kib / 1024 if sampler.samples else 0.0
        print(f"  [{elapsed:6.0f} s] {what}: {progress}; operator RSS {rss:.1f} MiB", file=sys.stderr, flush=True)
        if done:
            return elapsed
        if elapsed > timeout:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s ({progress})")
        time.sleep(5)


def conditions_reported(api: kubernetes.client.CustomObjectsApi, per_kind: int,
                        kinds: tuple[str, ...]) -> tuple[bool, str]:
    counts = {kind: sum(1 for o in items if (o.get("status") or {}).get("conditions"))
              for kind, items in listed(api, kinds)}
    return all(n >= per_kind for n in counts.values()), ", ".join(f"{p} {n}/{per_kind}" for p, n in counts.items())


def all_gone(api: kubernetes.client.CustomObjectsApi, kinds: tuple[str, ...]) -> tuple[bool, str]:
    counts = {kind: len(items) for kind, items in listed(api, kinds)}
    return not any(counts.values()), ", ".join(f"{p} {n}" for p, n in counts.items()) + " left"


def reconciles(running: OperatorProcess) -> int:
    """loom_reconcile_total summed over kinds and results."""
    with urllib.request.urlopen(running.metrics_url, timeout=5) as response:
        text = response.read().decode()
    return int(sum(float(m.group(1)) for m in re.finditer(r"^loom_reconcile_total\{[^}]*\} (\S+)$", text, re.M)))


def leftovers(state: Path) -> dict[str, int]:
    """What the local executor keeps per workload, still there: schedules, run dirs, lock files."""
    return {
        "schedules": len(list((state / "schedules").glob("*/*.json"))),
        "run dirs": len([p for p in (state / "runs").glob("*/*") if p.is_dir()]),
        "lock files": len(list((state / "locks").glob("*/*.lock"))),
    }


# --- the run ----------------------------------------------------------------------------------------


def mib(kib: int) -> float:
    return kib / 1024


def verdict(ok: bool) -> str:
    return "ok" if ok else "FAIL"


@dataclass(frozen=True)
class Cycle:
    """One phase A + phase B: the measurements and how long each part took."""

    live: Sample
    live_settled: tuple[bool, float]
    live_packages: list[str]
    after: Sample
    after_settled: tuple[bool, float]
    left: dict[str, int]
    applied: float
    reported: float
    gone: float
    reconciled: int


def one_cycle(args: argparse.Namespace, plane: ControlPlane, api: kubernetes.client.CustomObjectsApi,
              running: OperatorProcess, sampler: Sampler, lakes: Path, state: Path) -> Cycle:
    print(f"phase A: creating {args.per_kind} objects of each kind", file=sys.stderr, flush=True)
    started = time.monotonic()
    create_all(plane, args.per_kind, lakes, args.batch, args.concurrency, args.resolved_every, args.kinds)
    applied = time.monotonic() - started
    wait_for("status conditions", lambda: conditions_reported(api, args.per_kind, args.kinds), sampler, running,
             args.timeout)
    reported = time.monotonic() - started
    live_settled = settle(running, args.settle_timeout)
    live = sampler.sample()
    live_packages = native_packages(running.pid)
    reconciled = reconciles(running)

    print(f"phase B: deleting all {len(args.kinds) * args.per_kind}", file=sys.stderr, flush=True)
    started = time.monotonic()
    for kind in args.kinds:  # one deletecollection per kind: the finalizers do the rest
        api.delete_collection_namespaced_custom_object(GROUP, VERSION, NAMESPACE, kind)
    wait_for("deletion", lambda: all_gone(api, args.kinds), sampler, running, args.timeout)
    gone = time.monotonic() - started
    time.sleep(args.settle)
    after_settled = settle(running, args.settle_timeout)
    after = sampler.sample()
    return Cycle(live, live_settled, live_packages, after, after_settled, leftovers(state), applied, reported, gone,
                 reconciled)


def settled(state: tuple[bool, float]) -> str:
    ok, share = state
    return "settled" if ok else f"not settled: {share:.0%} of a CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-kind", type=int, default=1000, help="objects of each kind (default 1000)")
    parser.add_argument("--quick", action="store_true", help="a trial: 50 per kind, shorter settling")
    parser.add_argument("--cycles", type=int, default=1,
                        help="phase A + B this many times on the same operator (growth per cycle is a leak)")
    parser.add_argument("--kinds", default=",".join(PLURALS),
                        help=f"comma-separated plurals of the kinds to create (default {','.join(PLURALS)})")
    parser.add_argument("--batch", type=int, default=25, help="indexes (one object per kind) per kubectl apply")
    parser.add_argument("--concurrency", type=int, default=2, help="kubectl applies at once")
    parser.add_argument("--resolved-every", type=int, default=50,
                        help="every n-th FeatureSet names a real lake table (0: none)")
    parser.add_argument("--settle", type=float, default=30.0, help="seconds to wait after deletion at least")
    parser.add_argument("--settle-timeout", type=float, default=300.0,
                        help="longest wait for the operator to go idle before a measurement")
    parser.add_argument("--timeout", type=float, default=3600.0, help="longest wait for each phase")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (operator log, state)")
    args = parser.parse_args()
    if args.quick:
        args.per_kind, args.settle, args.settle_timeout = 50, 15.0, 120.0
    args.kinds = tuple(kind for kind in PLURALS if kind in args.kinds.split(","))
    if not args.kinds:
        parser.error(f"--kinds names none of {', '.join(PLURALS)}")
    live_objects = len(args.kinds) * args.per_kind

    work = Path(tempfile.mkdtemp(prefix="loom-bench-memory-"))
    state = work / "operator-state"
    began = time.monotonic()
    failed = True
    try:
        with control_plane(work / "controlplane") as plane:
            plane.run("create", "namespace", NAMESPACE)
            api = kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(str(plane.kubeconfig)))
            with operator(plane, state, work / "operator.log") as running:
                sampler = Sampler(running.pid)
                sampler.sample()
                sampler.start()
                try:
                    idle = settle(running, args.settle_timeout)
                    before = sampler.sample()
                    before_packages = native_packages(running.pid)
                    # Each cycle's lakes get new catalogs: a catalog kept (Retain) would be adopted.
                    cycles = [one_cycle(args, plane, api, running, sampler, work / f"lakes-{n}", state)
                              for n in range(1, args.cycles + 1)]
                    hwm = status_kib(running.pid, "VmHWM") or 0
                finally:
                    sampler.stop()
                peak, peak_children = sampler.peak(), sampler.peak_children()
        failed = False
    finally:
        if failed or args.keep:
            print(f"kept {work} (operator.log, operator-state)", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    last = cycles[-1]
    live = max((c.live for c in cycles), key=lambda s: s.operator_kib)
    ratio = last.after.operator_kib / before.operator_kib
    live_ok = mib(live.operator_kib) < LIVE_LIMIT_MIB
    ratio_ok = ratio <= AFTER_RATIO_LIMIT
    left_ok = not any(last.left.values())

    print(f"operator memory: {args.per_kind} objects per kind of {', '.join(args.kinds)} ({live_objects} live), "
          "RSS of the operator process in MiB")
    print(f"  before (idle, 0 objects):          {mib(before.operator_kib):7.1f}   ({settled(idle)})")
    print(f"  peak (sampled every 0.5 s):        {mib(peak.operator_kib):7.1f}   (kernel high-water mark VmHWM "
          f"{mib(hwm):.1f})")
    for n, c in enumerate(cycles, 1):
        label = f"cycle {n}: " if len(cycles) > 1 else ""
        print(f"  {f'{label}at {live_objects} live objects:':34} {mib(c.live.operator_kib):7.1f}   "
              f"({settled(c.live_settled)})")
        print(f"  {f'{label}after deleting all:':34} {mib(c.after.operator_kib):7.1f}   ({settled(c.after_settled)})")
    print(f"  requirement at {live_objects} live < {LIVE_LIMIT_MIB:.0f} MiB: {verdict(live_ok)}")
    print(f"  native extensions mapped: before {', '.join(before_packages) or 'none'}; at live "
          f"{', '.join(last.live_packages) or 'none'}")
    print(f"  ratio after / before:              {ratio:7.2f}   requirement <= {AFTER_RATIO_LIMIT:.2f}: "
          f"{verdict(ratio_ok)}")
    print(f"  threads and open files (sockets included): before {before.describe()}; live {last.live.describe()}; "
          f"after {last.after.describe()}")
    print(f"  child processes: peak {mib(peak_children.children_kib):.1f} MiB in {peak_children.children} "
          f"process(es); at live {last.live.children}, after {last.after.children}")
    print("  executor state left under LOOM_STATE_DIR: " + ", ".join(f"{k} {n}" for k, n in last.left.items())
          + f"; requirement 0: {verdict(left_ok)}")
    for n, c in enumerate(cycles, 1):
        label = f"cycle {n} " if len(cycles) > 1 else ""
        print(f"  {label}times: apply {c.applied:.0f} s, every object with a condition {c.reported:.0f} s "
              f"({c.reconciled} reconciles so far), all deleted {c.gone:.0f} s")
    print(f"  whole run {time.monotonic() - began:.0f} s")
    return 0 if live_ok and ratio_ok and left_ok else 1


if __name__ == "__main__":
    sys.exit(main())
