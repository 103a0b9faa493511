"""The local executor's wrapper around one component process (one attempt of a run):

    python -m loom.executors.supervisor ATTEMPT_DIR -- INTERPRETER COMPONENT [ARGS...]

It records its own pid (with the process start time, so a reused pid is never mistaken for it) before
starting the component, and the component's exit code when it ends, both atomically in ATTEMPT_DIR. The
operator can therefore die and come back at any point and still read how the run went. SIGTERM and
SIGINT are passed on to the component; an exit by signal N is recorded as 128+N, as a shell would.
The executor starts it as the leader of a new session, so the component (and whatever it starts) stays
in its process group even when the supervisor itself is killed; that is how an orphan is found.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from loom.executors.procfs import boot_id, start_ticks

PID_FILE = "pid.json"
EXIT_FILE = "exit.json"


def write_atomically(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m loom.executors.supervisor ATTEMPT_DIR -- COMMAND...", file=sys.stderr)
        return 2
    attempt_dir, command = Path(argv[0]), argv[2:]
    pid = os.getpid()
    write_atomically(attempt_dir / PID_FILE, {
        "pid": pid,
        "startTicks": start_ticks(pid),
        "bootId": boot_id(),
        "startedAt": datetime.now(timezone.utc).isoformat(),
    })
    try:
        child = subprocess.Popen(command)
    except OSError as error:
        print(f"cannot start {command[0]}: {error}", file=sys.stderr)
        code = 127
    else:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
        returncode = child.wait()
        code = 128 - returncode if returncode < 0 else returncode
    write_atomically(attempt_dir / EXIT_FILE, {"code": code, "finishedAt": datetime.now(timezone.utc).isoformat()})
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
