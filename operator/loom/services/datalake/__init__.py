"""DataLake reconcile as observe → decide → act: observe reads the catalog (each table once), the
executor's runs and the object's status; decide is pure; act creates and evolves tables and submits
or removes workloads. Deletion (`deletion.delete`) removes the workloads and applies `deletionPolicy`."""

from __future__ import annotations

from loom.api.datalake import DataLakeSpec
from loom.domain.outcome import Outcome
from loom.services.context import ReconcileContext
from loom.services.datalake.act import act
from loom.services.datalake.decide import decide
from loom.services.datalake.deletion import delete
from loom.services.datalake.observe import observe
from loom.services.datalake.session import open_session

__all__ = ["delete", "reconcile"]


def reconcile(spec: DataLakeSpec, ctx: ReconcileContext) -> Outcome:
    with open_session(spec, ctx.kube, ctx.namespace) as session:
        return act(decide(spec, observe(spec, ctx, session), ctx.now), ctx, session)
