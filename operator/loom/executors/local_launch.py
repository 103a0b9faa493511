"""Starting the local executor's runs and attempts: a run's directory written whole, then each attempt
as `components/<component>` (or the torch launcher) under its environment's interpreter, in a detached
session under a supervisor (`executors/supervisor.py`), with the attempt's environment: the workload's
variables, its Secrets' values, a service's ports, its files' directory. Callers hold the workload's
lock."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from loom.domain.errors import SecretNotFoundError
from loom.domain.workloads import FILES_ENV, PythonEnv, Workload
from loom.executors.local_layout import StateDir
from loom.executors.local_processes import Processes
from loom.executors.local_runs import (
    ATTEMPT_PREFIX,
    FAILED_FILE,
    FILES_DIR,
    LOG_FILE,
    RUN_FILE,
    SUSPENDED_FILE,
    utcnow,
    workload_to_json,
    write_json,
)
from loom.executors.local_services import service_environment
from loom.executors.procfs import ATTEMPT_ENV

SecretReader = Callable[[str, str], Mapping[str, str]]

DEFAULT_COMPONENTS_DIR = Path(__file__).resolve().parents[3] / "components"
# `$$` or `$(NAME)` in a workload argument (`expand`).
_REFERENCE = re.compile(r"\$(?:\$|\(([^)]*)\))")


class Launcher:
    """Creates runs and starts their attempts, handing each supervisor to `processes`."""

    def __init__(self, state: StateDir, processes: Processes, interpreters: Mapping[PythonEnv, str],
                 secrets: SecretReader, components_dir: Path) -> None:
        self._state = state
        self._processes = processes
        self._interpreters = dict(interpreters)
        self._secrets = secrets
        self._components_dir = components_dir

    def check(self, workload: Workload) -> None:
        """Raise what would keep the workload's attempts from starting: a missing interpreter or Secret key."""
        self._command(workload, self._environment(workload))

    def interpreter(self, workload: Workload) -> str:
        interpreter = self._interpreters.get(PythonEnv(workload.python))
        if interpreter is None:
            raise LookupError(f"no interpreter for the {workload.python} environment (set LOOM_PYTHON_SERVE)")
        return interpreter

    def create_run(self, workload: Workload, run_name: str, schedule: str | None, suspended: bool = False) -> bool:
        """Create the run and start its first attempt (none when it is created suspended), unless it
        exists. The run directory appears whole (renamed into place with its run.json), so readers
        never see half of one."""
        run_dir = self._state.run_dir(workload.namespace, run_name)
        if run_dir.exists():
            return False
        self._processes.end_orphans(self._state.workload_runs(workload.namespace, schedule or workload.name))
        tmp = run_dir.with_name(f".{run_name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)  # left by a starter that died
        tmp.mkdir(parents=True)
        if workload.files:
            (tmp / FILES_DIR).mkdir()
            for name, text in workload.files.items():
                (tmp / FILES_DIR / name).write_text(text, encoding="utf-8")
        write_json(tmp / RUN_FILE, {
            "workload": workload_to_json(workload),
            "schedule": schedule,
            "createdAt": utcnow().isoformat(),
        })
        if suspended:
            write_json(tmp / SUSPENDED_FILE, {"at": utcnow().isoformat()})
        os.rename(tmp, run_dir)
        if not suspended:
            self.launch(run_dir, 1, workload)
        return True

    def launch(self, run_dir: Path, number: int, workload: Workload) -> None:
        """Start attempt `number`; what keeps it from starting is recorded as its failure."""
        attempt = run_dir / f"{ATTEMPT_PREFIX}{number}"
        attempt.mkdir()
        try:
            env = self._environment(workload)
            env.pop(FILES_ENV, None)
            if workload.files:
                env[FILES_ENV] = str(run_dir / FILES_DIR)
            env[ATTEMPT_ENV] = str(attempt)
            command = self._command(workload, env)
            with (attempt / LOG_FILE).open("ab") as output:
                child = subprocess.Popen(
                    [sys.executable, "-m", "loom.executors.supervisor", str(attempt), "--", *command],
                    stdin=subprocess.DEVNULL, stdout=output, stderr=output, env=env, cwd=run_dir,
                    start_new_session=True,
                )
        except Exception as error:  # E2BIG, a missing interpreter or Secret, an unreachable API server
            write_json(attempt / FAILED_FILE, {"message": f"could not start: {error}", "at": utcnow().isoformat()})
            return
        self._processes.started(child, attempt)

    def _command(self, workload: Workload, env: Mapping[str, str]) -> list[str]:
        """The attempt's command, its `$(VAR)` arguments expanded from `env`, the attempt's environment."""
        interpreter = self.interpreter(workload)
        component = str(self._components_dir / workload.component)
        args = [expand(arg, env) for arg in workload.args]
        training = workload.training
        if training is None:
            return [interpreter, component, *args]
        # The launcher is the executor's, like the supervisor: this interpreter; its nodes run the workload's.
        return [sys.executable, "-m", "loom.executors.torch_launch", "--python", interpreter,
                "--nodes", str(training.num_nodes), "--procs-per-node", str(training.num_proc_per_node),
                "--", component, *args]

    def _environment(self, workload: Workload) -> dict[str, str]:
        node_env = workload.training.node.env if workload.training is not None else {}
        ports = service_environment(workload.service) if workload.service is not None else {}
        env = {**os.environ, **node_env, **workload.env, **ports, "PYTHONUNBUFFERED": "1"}
        for ref in workload.secret_env:
            values = self._secrets(workload.namespace, ref.secret)
            if ref.key not in values:
                raise SecretNotFoundError(f"Secret {workload.namespace}/{ref.secret} has no key {ref.key!r}")
            env[ref.name] = values[ref.key]
        return env


def expand(arg: str, env: Mapping[str, str]) -> str:
    """A workload argument as Kubernetes expands a container's args: `$(NAME)` is NAME's value in the
    process's environment, `$$` a literal `$` (so `$$(NAME)` stays `$(NAME)`), and a reference to a
    name the environment lacks is left as written."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return "$" if name is None else env.get(name, match.group(0))

    return _REFERENCE.sub(value, arg)
