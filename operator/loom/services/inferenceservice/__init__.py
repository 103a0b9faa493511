"""InferenceService reconcile: serve a registered model and roll new versions out by canary. So far it
judges whether its model is available; serving itself is not in this operator version."""

from __future__ import annotations

from loom.api.inferenceservice import InferenceServiceSpec
from loom.domain.outcome import Outcome
from loom.services.context import ReconcileContext
from loom.services.inferenceservice.decide import decide
from loom.services.inferenceservice.observe import observe


def reconcile(spec: InferenceServiceSpec, ctx: ReconcileContext) -> Outcome:
    return decide(spec, observe(spec, ctx), ctx.now).outcome
