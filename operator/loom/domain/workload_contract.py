"""What a component and the executor that runs it agree on, with nothing else imported: components read
these at start-up, before anything heavy is loaded (`loom.domain.workloads` re-exports them)."""

from __future__ import annotations

# A component's exit status for input it cannot process (sysexits' EX_DATAERR). The same input fails
# the same way, so such a run is never retried: a Job's podFailurePolicy fails it at once, and the
# local executor does the same.
EXIT_INPUT_ERROR = 65
# Where a component finds its workload's files (`Workload.files`): the executor puts them in one
# directory (a mounted ConfigMap, a run's `files/`) and names it in this environment variable. Large
# values travel this way because one argv or environment string is capped at 128 KiB by Linux.
FILES_ENV = "LOOM_WORKLOAD_FILES"
