"""`python -m tests.fuzz.run --per-kind N --seed S`: the fuzz run of `make fuzz`; exits 1 when any
failure class is non-zero."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tests.fuzz.runner import Settings, default_workdir, run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__)
    p.add_argument("--per-kind", type=int, default=1000, help="cases per kind")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=25, help="cases per kind applied together, in one namespace")
    p.add_argument("--parallel", type=int, default=2, help="namespaces worked at once")
    p.add_argument("--quiet", type=float, default=10.0, help="seconds watched for writes without a change")
    p.add_argument("--condition-timeout", type=float, default=60.0)
    p.add_argument("--deletion-timeout", type=float, default=60.0)
    p.add_argument("--workdir", type=Path, default=None, help="kept: operator log, report, failing manifests")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    settings = Settings(per_kind=args.per_kind, seed=args.seed, workdir=args.workdir or default_workdir(),
                        batch=args.batch, parallel=args.parallel, quiet=args.quiet, condition_timeout=args.condition_timeout,
                        deletion_timeout=args.deletion_timeout)
    report = run(settings)
    print(report.render())
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
