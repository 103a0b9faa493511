"""The objects' reconcile loops, as tasks in Kopf's event loop: an object's first watch event starts
its loop, every event gives it the newest body, and its deletion ends it once its reconcile in
progress is done. Unlike a Kopf daemon, a loop needs no finalizer on the object: a kind with
something to clean up at deletion has a deletion handler, which brings its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import kopf

from loom.handlers.bodies import slim
from loom.handlers.triggers import ObjectRef

log = logging.getLogger(__name__)

# A loop: given its object, its newest body (a callable, read at each reconcile) and its stop signal.
LoopFn = Callable[[ObjectRef, Callable[[], kopf.Body], asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class _Loop:
    body: kopf.Body
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Loops:
    """The running loop of each object, by reference. Used from the event loop only."""

    def __init__(self) -> None:
        self._loops: dict[ObjectRef, _Loop] = {}

    def __len__(self) -> int:
        return len(self._loops)

    def seen(self, ref: ObjectRef, raw: Mapping[str, Any], deleted: bool, run: LoopFn) -> None:
        """A watch event of `ref`: keep its body, start its loop if it has none, or end it."""
        current = self._loops.get(ref)
        if deleted:
            if current is not None:
                current.stop.set()
            return
        body = kopf.Body(cast(kopf.RawBody, slim(raw)))
        if current is not None and not current.stop.is_set():
            current.body = body
            return
        loop = _Loop(body)
        self._loops[ref] = loop
        previous = current.task if current is not None else None
        loop.task = asyncio.create_task(self._run(ref, loop, previous, run), name=f"reconcile {ref}")

    async def _run(self, ref: ObjectRef, loop: _Loop, previous: asyncio.Task[None] | None, run: LoopFn) -> None:
        """The loop of a re-created object starts once the old object's loop has ended."""
        try:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(previous)
            await run(ref, lambda: loop.body, loop.stop)
        except Exception:  # the loop handles its reconciles' errors: this is a bug, not a retry
            log.exception("the reconcile loop of %s ended", ref)
        finally:
            if self._loops.get(ref) is loop:
                del self._loops[ref]

    def stop(self) -> None:
        """End every loop after its reconcile in progress (the operator is stopping)."""
        for loop in self._loops.values():
            loop.stop.set()
