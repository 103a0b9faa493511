"""The processes of the local executor's attempts once they are started: the supervisors this process
started (collected when they exit, so none is left a zombie), and ending an attempt's processes, its
own or an orphan's whose supervisor died, so that two runs of a workload never overlap."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from loom.executors.local_runs import FAILED_FILE, LOG_FILE, attempt_dirs, last_line, read_json, utcnow, write_json
from loom.executors.procfs import alive, group_members, marked
from loom.executors.supervisor import EXIT_FILE, PID_FILE

# Between SIGTERM and SIGKILL when a run is stopped or an orphaned component ended.
STOP_GRACE_SECONDS = 10.0
# How long a suspend or a deadline waits for an attempt it just started to record its pid.
START_WAIT_SECONDS = 10.0


class Processes:
    """The supervisors one executor started, and the ending of any attempt's processes."""

    def __init__(self, stop_grace_seconds: float) -> None:
        self.stop_grace_seconds = stop_grace_seconds
        self._children: dict[int, tuple[subprocess.Popen[bytes], Path]] = {}  # by pid, with the attempt
        self._children_lock = threading.Lock()

    def started(self, child: subprocess.Popen[bytes], attempt: Path) -> None:
        """Keep the supervisor just started for the attempt, to collect it once it exits."""
        with self._children_lock:
            self._children[child.pid] = (child, attempt)

    def wait_for_supervisor(self, attempt: Path) -> None:
        """An attempt this process just started may not have recorded its pid yet; it has to, for its
        processes to be found and ended (bounded by the start grace of a supervisor that never came up)."""
        deadline = time.monotonic() + START_WAIT_SECONDS
        while not (attempt / PID_FILE).exists() and time.monotonic() < deadline:
            with self._children_lock:
                starting = any(a == attempt and c.poll() is None for c, a in self._children.values())
            if not starting:
                return
            time.sleep(0.05)

    def end_orphans(self, run_dirs: Iterable[Path]) -> None:
        """End what is left of earlier runs of a workload (`run_dirs`) whose supervisor is gone: a
        component (and its children) still in the supervisor's process group. An attempt that never
        recorded how it ended is recorded as failed."""
        for run_dir in run_dirs:
            for attempt in attempt_dirs(run_dir):
                pid = read_json(attempt / PID_FILE)
                if pid is None or alive(pid["pid"], pid["startTicks"], pid["bootId"]):
                    continue
                ended = self.end_group(attempt)
                if ended and not (attempt / EXIT_FILE).exists() and not (attempt / FAILED_FILE).exists():
                    pids = ", ".join(str(p) for p in ended)
                    write_json(attempt / FAILED_FILE, {
                        "message": f"supervisor died; ended the orphaned component (pid {pids})",
                        "at": utcnow().isoformat(),
                    })

    def end_group(self, attempt: Path) -> list[int]:
        """SIGTERM to the attempt's process group (supervisor, component and its children) and to its
        processes that left the group (torchrun's workers, found by the attempt's marker), SIGKILL to
        what is left after the grace; returns once none is left. Returns the pids it found."""
        pid = read_json(attempt / PID_FILE)
        if pid is None:
            return []

        def members() -> list[int]:
            return sorted(set(group_members(pid["pid"], pid["startTicks"], pid["bootId"])) | set(marked(str(attempt))))

        found = members()
        for sig, grace in ((signal.SIGTERM, self.stop_grace_seconds), (signal.SIGKILL, self.stop_grace_seconds)):
            left = members()
            if not left:
                break
            try:
                os.killpg(pid["pid"], sig)
            except ProcessLookupError:
                pass
            for escaped in set(left) - set(group_members(pid["pid"], pid["startTicks"], pid["bootId"])):
                try:
                    os.kill(escaped, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while members() and time.monotonic() < deadline:
                time.sleep(0.05)
        return found

    def reap(self) -> None:
        """Collect supervisors this process started that have exited (no zombies left behind); one that
        exited before writing its pid could not start (its log says why, e.g. loom not importable)."""
        with self._children_lock:
            for pid, (child, attempt) in list(self._children.items()):
                code = child.poll()
                if code is None:
                    continue
                del self._children[pid]
                if attempt.is_dir() and not (attempt / PID_FILE).exists():
                    why = last_line(attempt / LOG_FILE) or f"exit code {code}"
                    write_json(attempt / FAILED_FILE, {"message": f"the supervisor could not start: {why}",
                                                        "at": utcnow().isoformat()})
