"""A model server of one revision, as the local executor runs it (`python components/serve`): MLServer
on the model repository in $LOOM_WORKLOAD_FILES (the revision's model-settings.json, Loom's
`serve.runtime.Recommender` over the version's downloaded files), listening where the MLSERVER_*
variables say (MLSERVER_HTTP_PORT, MLSERVER_GRPC_PORT, MLSERVER_METRICS_PORT, MLSERVER_HOST), as
MLServer's own settings read them.

In a cluster the serve image starts `mlserver start` itself (Seldon Core 2's agent or KServe fills the
repository); this only puts `components/` on the import path of MLServer and of its inference workers
(they are new processes, so through PYTHONPATH) and hands over to MLServer's command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

FILES_ENV = "LOOM_WORKLOAD_FILES"


def main() -> int:
    repository = os.environ.get(FILES_ENV)
    if not repository or not (Path(repository) / "model-settings.json").is_file():
        print(f"serve: no model-settings.json in ${FILES_ENV} ({repository or 'unset'})", file=sys.stderr)
        return 65  # EX_DATAERR: the same input fails the same way
    components = str(Path(__file__).resolve().parent.parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (components, os.environ.get("PYTHONPATH")) if p)
    sys.path[0] = components  # not this directory: its modules are the runtime's, imported as serve.*
    from mlserver.cli import main as mlserver

    sys.argv = ["mlserver", "start", repository]
    mlserver()
    return 0


if __name__ == "__main__":
    sys.exit(main())
