"""DataLake reconcile as observe → decide → act: observe reads the catalog (each table once), the
executor's runs and the object's status; decide is pure; act creates and evolves tables and submits
or removes workloads. Deletion (`deletion.delete`) removes the workloads and applies `deletionPolicy`.

The steps are imported by the first reconcile or deletion, not with the package: they pull in
pyiceberg (the schema plan is written in its types) and its catalog, which an operator without
DataLakes never needs (tests/unit/test_startup_imports.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loom.api.datalake import DataLakeSpec
    from loom.domain.outcome import Outcome
    from loom.services.context import ReconcileContext
    from loom.services.deletion import Cleanup

__all__ = ["delete", "reconcile"]


def reconcile(spec: DataLakeSpec, ctx: ReconcileContext) -> Outcome:
    from loom.services.datalake import act, decide, observe, session

    with session.open_session(spec, ctx.kube, ctx.namespace) as opened:
        return act.act(decide.decide(spec, observe.observe(spec, ctx, opened), ctx.now), ctx, opened)


def delete(spec: DataLakeSpec | None, ctx: ReconcileContext) -> Cleanup:
    from loom.services.datalake import deletion

    return deletion.delete(spec, ctx)
