"""Types every layer shares: workloads, schedules, outcomes, table changes, feature view definitions.

Pure values and functions only: no I/O, no Kubernetes, no clients. Everything above may import it;
it imports nothing of Loom but `loom.api`."""
