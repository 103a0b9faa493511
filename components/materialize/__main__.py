"""Materialize one FeatureSet snapshot into its online store (the workload behind FeatureSet).

    python components/materialize --request '<MaterializeRequest JSON>'
    python components/materialize --request @request.json

A relative @FILE is one of the workload's files, in $LOOM_WORKLOAD_FILES (how the operator passes the
request: it may be larger than one command-line argument may be).

Quality gate, then the newest row per entity written online (Loom's writer of Feast's Redis layout, or
Feast materialize for SQLite); progress goes to stderr and the result is printed as one JSON line last
on stdout (rows written, duration, rows per second, snapshot id, the quality numbers). Exit codes:
0 materialized, 3 the quality gate rejected the snapshot (nothing was written online), 65 the input
cannot be materialized as it is (a value that does not convert, a column or snapshot that is not
there: not retried, since the same input fails the same way), 1 any other error (may heal: retried).
The last line on stderr is the verdict.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback

from pyiceberg.exceptions import NoSuchTableError

from loom.domain.workloads import EXIT_INPUT_ERROR
from loom.drivers.feast_pins import SnapshotNotPinnable
from loom.features.materialize import MaterializeRequest, StaleRequest, run
from loom.workload_args import workload_file

QUALITY_FAILED = 3
# What the data or the definition raises when it cannot be materialized as it is (pyarrow's and ibis'
# conversion errors and pydantic's are ValueErrors or TypeErrors); a StaleRequest is a race instead.
INPUT_ERRORS = (ValueError, TypeError, KeyError, NotImplementedError, NoSuchTableError, SnapshotNotPinnable)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="materialize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--request", required=True, help="request JSON, or @FILE to read it from a file")
    args = parser.parse_args(argv)
    text = workload_file(args.request[1:]).read_text() if args.request.startswith("@") else args.request
    try:
        result = run(MaterializeRequest.model_validate_json(text))
    except StaleRequest:
        raise
    except INPUT_ERRORS as error:
        traceback.print_exc()
        detail = " ".join(str(error).split())  # one line: the verdict is the log's last line
        print(f"input error: {type(error).__module__}.{type(error).__name__}: {detail}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    print(json.dumps(result.to_json(), separators=(",", ":")), flush=True)
    if not result.passed:
        print(f"quality gate rejected snapshot {result.snapshot_id}: {result.quality.summary()}", file=sys.stderr)
        return QUALITY_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
