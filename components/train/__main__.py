"""Train the builtin two-tower recommender from a TrainingJob's train.json, evaluate it against
popularity, EASE and the serving champion on one per-user temporal holdout, log it to MLflow and
register the version.

    python components/train --config-file train.json      # or under torchrun for several processes

A relative --config-file is one of the workload's files (in $LOOM_WORKLOAD_FILES). Every rank trains
(DistributedDataParallel when WORLD_SIZE > 1); rank 0 alone talks to MLflow and prints, as the last
stdout line, {"runId", "loggedModelId", "modelVersion", "metrics", "rows", "users", "items"}. Progress
goes to stderr, ending with a one-line verdict. Input that cannot be trained on (a bad train.json,
an unknown hyperparameter, a missing column or snapshot) exits 65, which is not retried."""

from __future__ import annotations

import argparse
import json
import sys
import traceback

from contract import InputError, load
from pipeline import log, run

from loom.domain.workloads import EXIT_INPUT_ERROR
from loom.workload_args import workload_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", type=workload_file, required=True,
                        help="train.json; a relative path is in $LOOM_WORKLOAD_FILES")
    args = parser.parse_args(argv)
    try:
        result = run(load(args.config_file))
    except InputError as error:
        log(f"train failed: {error}")
        return EXIT_INPUT_ERROR
    except Exception as error:  # the traceback for the log, then the one-line verdict last
        traceback.print_exc()
        log(f"train failed: {type(error).__name__}: {error}")
        return 1
    if result is not None:
        print(json.dumps(result, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
