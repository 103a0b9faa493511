"""Materialize one FeatureSet snapshot into its online store (the workload behind FeatureSet).

    python components/materialize --request '<MaterializeRequest JSON>'
    python components/materialize --request @request.json

Quality gate, then Feast materialize; Feast's progress goes to stderr and the result is printed as
one JSON line last on stdout (rows written, duration, snapshot id, the quality numbers). Exit codes:
0 materialized, 3 the quality gate rejected the snapshot (nothing was written online), 1 any error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loom.features.materialize import MaterializeRequest, run

QUALITY_FAILED = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="materialize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--request", required=True, help="request JSON, or @FILE to read it from a file")
    args = parser.parse_args(argv)
    text = Path(args.request[1:]).read_text() if args.request.startswith("@") else args.request
    result = run(MaterializeRequest.model_validate_json(text))
    print(json.dumps(result.to_json(), separators=(",", ":")), flush=True)
    if not result.passed:
        print(f"quality gate rejected snapshot {result.snapshot_id}: {result.quality.summary()}", file=sys.stderr)
        return QUALITY_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
