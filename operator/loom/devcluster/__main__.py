"""`python -m loom.devcluster {build,up,down,env,status}`: the entrypoint for Makefile, CI and hack/."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import BinariesError, ClusterError, down, ensure_binaries, env, status, up


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loom.devcluster", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="cluster state dir (default: $LOOM_DEV_DIR or ~/.local/state/loom/dev)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build the control-plane binaries into the cache (no-op when cached)")
    commands.add_parser("up", help="start the cluster, or reuse the healthy one")
    down_parser = commands.add_parser("down", help="stop the cluster")
    down_parser.add_argument("--purge", action="store_true", help="also delete etcd data, certs and logs")
    commands.add_parser("env", help="print shell exports for KUBECONFIG and PATH")
    commands.add_parser("status", help="print the recorded cluster as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "build":
            print(ensure_binaries().bin_dir)
        elif args.command == "up":
            up(args.state_dir)
            print(env(args.state_dir))
        elif args.command == "down":
            down(args.state_dir, purge=args.purge)
        elif args.command == "env":
            print(env(args.state_dir))
        else:
            current = status(args.state_dir)
            print(json.dumps(None if current is None else {
                "server": current.cluster.server,
                "kubeconfig": str(current.cluster.kubeconfig),
                "pids": dict(current.pids),
                "ports": dict(current.ports),
                "healthy": current.healthy,
            }, indent=2))
    except (ClusterError, BinariesError) as exc:
        logging.getLogger(__name__).error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
