"""Kubeflow's torch runtime on one machine: the command of a local training attempt.

    python -m loom.executors.torch_launch --python INTERPRETER --nodes N --procs-per-node P -- COMPONENT [ARGS...]

It starts N node processes, each `INTERPRETER -m torch.distributed.run -m loom.executors.torch_worker
COMPONENT ARGS...` with the environment the torch runtime gives a node's pod: PET_NNODES,
PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR (127.0.0.1) and PET_MASTER_PORT (a port free when
the attempt starts). torchrun takes PET_* as its defaults, so each of its P workers gets RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT exactly as in a cluster, also for one node of one
process. The attempt's directory (`$LOOM_ATTEMPT`, set by the executor) receives `nodes/node-<k>.json`
(pid, then exit code: the run's replica counts) and, through the worker wrapper, `ranks/rank-<r>.json`.

All nodes are waited for. When one fails the others are terminated and the launcher exits with the
exit status of the first worker that failed (65, an input error, passes through and is not retried),
or of the node when no worker recorded one; its last line says which. SIGTERM and SIGINT are passed on
to every node (torchrun ends its workers). Imports stay within the standard library and `loom.domain`:
this starts with every attempt.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from loom.domain.training import PET_MASTER_ADDR, PET_MASTER_PORT, PET_NNODES, PET_NODE_RANK, PET_NPROC_PER_NODE
from loom.executors.procfs import ATTEMPT_ENV, boot_id, marked, start_ticks
from loom.executors.torch_worker import RANKS_DIR, STATUS_ENV

NODES_DIR = "nodes"
MASTER_ADDR = "127.0.0.1"
WORKER_MODULE = "loom.executors.torch_worker"
# Between SIGTERM and SIGKILL for the other nodes when one failed (torchrun needs a moment to end its workers).
STOP_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.1


def free_port() -> int:
    with socket.socket() as s:
        s.bind((MASTER_ADDR, 0))
        port: int = s.getsockname()[1]
        return port


def node_file(attempt: Path, rank: int) -> Path:
    return attempt / NODES_DIR / f"node-{rank}.json"


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class Node:
    rank: int
    proc: subprocess.Popen[bytes]
    record: dict[str, Any]
    code: int | None = None


class Launcher:
    def __init__(self, attempt: Path, python: str, nodes: int, procs: int, command: list[str]) -> None:
        self.attempt = attempt
        self.python = python
        self.count = nodes
        self.procs = procs
        self.command = command
        self.nodes: list[Node] = []
        self.signalled: int | None = None
        self.stop_at: float | None = None  # when the nodes still going are killed

    def run(self) -> int:
        (self.attempt / NODES_DIR).mkdir(exist_ok=True)
        (self.attempt / RANKS_DIR).mkdir(exist_ok=True)
        port = free_port()
        print(f"training: {self.count} node(s) x {self.procs} process(es), master {MASTER_ADDR}:{port}", flush=True)
        env = {
            **os.environ,
            PET_NNODES: str(self.count),
            PET_NPROC_PER_NODE: str(self.procs),
            PET_MASTER_ADDR: MASTER_ADDR,
            PET_MASTER_PORT: str(port),
            STATUS_ENV: str(self.attempt),
        }
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._forward)
        for rank in range(self.count):
            if self.signalled is not None:
                break
            proc = subprocess.Popen(
                [self.python, "-m", "torch.distributed.run", "-m", WORKER_MODULE, *self.command],
                env={**env, PET_NODE_RANK: str(rank)},
            )
            record = {"rank": rank, "pid": proc.pid, "startTicks": start_ticks(proc.pid), "bootId": boot_id(), "code": None}
            _write(node_file(self.attempt, rank), record)
            self.nodes.append(Node(rank, proc, record))
        self._wait()
        return self._verdict()

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self.signalled = signum
        self._terminate()

    def _terminate(self) -> None:
        if self.stop_at is None:
            self.stop_at = time.monotonic() + STOP_GRACE_SECONDS
        for node in self.nodes:
            if node.code is None:
                try:
                    node.proc.terminate()
                except ProcessLookupError:
                    pass

    def _wait(self) -> None:
        while any(n.code is None for n in self.nodes):
            for node in self.nodes:
                if node.code is None and (returncode := node.proc.poll()) is not None:
                    node.code = _code(returncode)
                    _write(node_file(self.attempt, node.rank), {**node.record, "code": node.code})
                    if node.code != 0:
                        self._terminate()
            if self.stop_at is not None and time.monotonic() > self.stop_at:
                self._kill_rest()
            time.sleep(POLL_SECONDS)

    def _kill_rest(self) -> None:
        """SIGKILL the nodes still going and the workers they would have ended (a worker has a session
        of its own, so it is found by the attempt's marker)."""
        for node in self.nodes:
            if node.code is None:
                node.proc.kill()
        own = os.getpid()
        for pid in marked(str(self.attempt)):
            if pid != own and pid != os.getppid():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _verdict(self) -> int:
        if self.signalled is not None:
            print(f"training stopped by signal {self.signalled}", file=sys.stderr)
            return 128 + self.signalled
        failed = [n for n in self.nodes if n.code]
        if not failed:
            return 0
        ranks = []
        for path in (self.attempt / RANKS_DIR).glob("rank-*.json"):
            data = json.loads(path.read_text())
            if data["code"]:
                ranks.append((data["at"], int(path.stem.split("-")[1]), data))
        if ranks:
            _, rank, data = min(ranks, key=lambda r: (r[0], r[1]))
            code = int(data["code"])
            error = f": {data['error']}" if data.get("error") else ""
            print(f"training failed: rank {rank} exited with code {code}{error}", file=sys.stderr)
            return code
        node = failed[0]
        print(f"training failed: node {node.rank} exited with code {node.code}", file=sys.stderr)
        return node.code or 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m loom.executors.torch_launch")
    parser.add_argument("--python", required=True, help="the interpreter of the node processes")
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--procs-per-node", type=int, required=True)
    parser.add_argument("command", nargs="+", help="COMPONENT [ARGS...] (after --)")
    args = parser.parse_args(argv)
    attempt = Path(os.environ.get(ATTEMPT_ENV) or os.getcwd())
    return Launcher(attempt, args.python, args.nodes, args.procs_per_node, args.command).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
