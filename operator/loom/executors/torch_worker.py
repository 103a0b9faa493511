"""One worker process of a local training run, as torchrun starts it (`torchrun -m
loom.executors.torch_worker COMPONENT ARGS...`): runs COMPONENT as `python COMPONENT ARGS...` would,
in this process, and records how it exited in `<$LOOM_TRAINING_STATUS>/ranks/rank-<RANK>.json`.

torchrun reports any failed worker as its own exit status 1, so without this record the launcher could
not pass a component's exit status on (an input error, 65, must not be retried). Only the standard
library is imported here: this runs in every worker, before the component.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import time
import traceback
from pathlib import Path

STATUS_ENV = "LOOM_TRAINING_STATUS"
RANKS_DIR = "ranks"


def _record(code: int, error: str) -> None:
    status = os.environ.get(STATUS_ENV)
    if not status:
        return
    path = Path(status) / RANKS_DIR / f"rank-{os.environ.get('RANK', '0')}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps({"code": code, "error": error, "at": time.time()}))
        os.replace(tmp, path)
    except OSError as exc:  # the record is for the launcher's message; the exit status still counts
        print(f"could not record the exit of rank {os.environ.get('RANK')}: {exc}", file=sys.stderr)


def _exit_code(value: object) -> int:
    """What the interpreter would exit with for `sys.exit(value)` (a message is printed and means 1)."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: python -m loom.executors.torch_worker COMPONENT [ARGS...]", file=sys.stderr)
        return 2
    component = sys.argv[1]
    sys.argv = sys.argv[1:]
    # As `python COMPONENT` has it: the component's directory first on the path, not the current one.
    sys.path[0] = component if os.path.isdir(component) else os.path.dirname(os.path.abspath(component))
    code, error = 0, ""
    try:
        runpy.run_path(component, run_name="__main__")
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException as exc:  # what the interpreter would print and exit 1 for
        traceback.print_exc()
        code, error = 1, traceback.format_exception_only(type(exc), exc)[-1].strip()
    sys.stdout.flush()
    sys.stderr.flush()
    _record(code, error)
    return code


if __name__ == "__main__":
    sys.exit(main())
