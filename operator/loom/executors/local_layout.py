"""Where the local executor keeps things in its state directory (the layout is described in
`executors/local.py`): the paths of schedules, runs and locks, the workload lock itself, and a run read
back from its directory. One place for them, so every part of the executor finds the same files."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from loom.executors.local_runs import (
    ENDED_FILE,
    RUN_FILE,
    SUSPENDED_FILE,
    Run,
    attempt_dirs,
    attempt_status,
    read_json,
    workload_from_json,
)


def read_run(run_dir: Path) -> Run | None:
    """The run as its directory records it; None when it has no run.json (deleted, or never whole)."""
    run = read_json(run_dir / RUN_FILE)
    if run is None:
        return None
    attempts = tuple(attempt_dirs(run_dir))
    last = attempt_status(attempts[-1]) if attempts else None
    return Run(run_dir, workload_from_json(run["workload"]), run["schedule"], attempts, last,
               read_json(run_dir / SUSPENDED_FILE), read_json(run_dir / ENDED_FILE))


class StateDir:
    """One executor's state directory: the paths under it, and the workload locks kept there."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def run_dir(self, namespace: str, name: str) -> Path:
        return self.root / "runs" / namespace / name

    def run_dirs(self, namespace: str) -> list[Path]:
        base = self.root / "runs" / namespace
        return sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")) if base.is_dir() else []

    def all_run_dirs(self) -> list[Path]:
        """The run directories of every namespace."""
        return self._all(self.root / "runs", Path.is_dir)

    def all_schedules(self) -> list[Path]:
        """The schedule files of every namespace."""
        return self._all(self.root / "schedules", lambda p: p.suffix == ".json")

    def schedules(self, namespace: str) -> list[Path]:
        return sorted((self.root / "schedules" / namespace).glob("*.json"))

    def schedule_path(self, namespace: str, name: str) -> Path:
        return self.root / "schedules" / namespace / f"{name}.json"

    def schedule_runs(self, namespace: str, name: str) -> list[Path]:
        """Run directories of a schedule, newest first (run names end in the tick's minute)."""
        runs = [
            d for d in self.run_dirs(namespace)
            if d.name.startswith(f"{name}-") and (read_json(d / RUN_FILE) or {}).get("schedule") == name
        ]
        return sorted(runs, key=lambda d: int(d.name.rsplit("-", 1)[1]), reverse=True)

    def workload_runs(self, namespace: str, name: str) -> list[Path]:
        """The runs of a workload: a schedule's runs, or the one run of a once-workload."""
        own = self.run_dir(namespace, name)
        return self.schedule_runs(namespace, name) + ([own] if own.is_dir() else [])

    def service_ports(self) -> set[int]:
        """The ports every service run (of any namespace) was given, so that none is given twice."""
        taken: set[int] = set()
        for run_dir in self.all_run_dirs():
            service = ((read_json(run_dir / RUN_FILE) or {}).get("workload") or {}).get("service")
            if service is not None:
                taken.update(service["ports"].values())
        return taken

    def lock_path(self, namespace: str, name: str) -> Path:
        return self.root / "locks" / namespace / f"{name}.lock"

    @contextmanager
    def lock(self, namespace: str, name: str) -> Iterator[None]:
        """An exclusive flock on the workload's lock file, for threads and processes alike. `delete`
        removes the file while holding it, so a lock taken on a file no longer at the path is retried."""
        path = self.lock_path(namespace, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            yield
        finally:
            os.close(fd)

    def _all(self, base: Path, keep: Callable[[Path], bool]) -> list[Path]:
        """Entries of every namespace under `base` (runs or schedules), without temporary ones."""
        if not base.is_dir():
            return []
        return sorted(p for ns in base.iterdir() if ns.is_dir() for p in ns.iterdir()
                      if not p.name.startswith(".") and keep(p))
