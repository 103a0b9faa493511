"""The reconcile loops: an object's first event starts its loop, later events give it the newest
body without starting another, deletion ends it, and a re-created object's loop starts only once
the old one has ended."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import kopf

from loom.handlers.loops import Loops
from loom.handlers.triggers import ObjectRef

REF = ObjectRef("trainingjobs", "ml", "recsys")


def raw(uid: str, generation: int = 1) -> dict[str, object]:
    return {"metadata": {"name": "recsys", "namespace": "ml", "uid": uid, "generation": generation,
                         "managedFields": [{"manager": "kubectl"}]}, "spec": {}}


def test_one_loop_per_object_that_reads_the_newest_body_and_ends_on_deletion() -> None:
    async def scenario() -> None:
        loops, started, seen = Loops(), [], []
        release = asyncio.Event()

        async def run(ref: ObjectRef, current: Callable[[], kopf.Body], stop: asyncio.Event) -> None:
            started.append(current().metadata.uid)
            await release.wait()
            seen.append((current().metadata.uid, current().metadata.get("generation")))
            assert "managedFields" not in current().metadata  # never read, not kept
            await stop.wait()

        loops.seen(REF, raw("u1"), False, run)
        await asyncio.sleep(0)
        loops.seen(REF, raw("u1", 2), False, run)
        await asyncio.sleep(0)
        assert started == ["u1"] and len(loops) == 1
        release.set()
        await asyncio.sleep(0)
        assert seen == [("u1", 2)]
        loops.seen(REF, raw("u1", 2), True, run)  # deleted
        loops.seen(REF, raw("u2"), False, run)  # re-created at once: waits for the old loop
        for _ in range(5):
            await asyncio.sleep(0)
        assert started == ["u1", "u2"] and len(loops) == 1
        loops.stop()
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(loops) == 0

    asyncio.run(scenario())
