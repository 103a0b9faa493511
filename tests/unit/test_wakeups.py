"""The in-memory wake-ups of the reconcile loops: who is woken, once per change, from any thread, and
when the scheduler wakes an object (on an injected clock)."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta, timezone

from loom.api.kinds import DATALAKE, KINDS
from loom.config import OperatorConfig
from loom.domain.workloads import OwnerRef, Phase, RunChange, WorkloadStatus
from loom.handlers.reconcile import FINALIZER, backoff, own_change
from loom.handlers.reconcile import finalized as reconcile_finalized
from loom.handlers.triggers import SCHEDULE, ObjectRef, Scheduler, Wakeups

LAKE = ObjectRef(DATALAKE.plural, "ns", "movielens")
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


async def _settled() -> None:
    """Let callbacks scheduled with call_soon_threadsafe run."""
    for _ in range(3):
        await asyncio.sleep(0)


def test_a_value_wakes_once_per_change_and_a_bare_wake_always() -> None:
    async def scenario() -> list[bool]:
        wakeups = Wakeups(KINDS)
        event = wakeups.register(LAKE)
        seen = []
        for source, value in [("featureset", "a"), ("featureset", "a"), ("featureset", "b"),
                              ("own", "a"), (SCHEDULE, None), (SCHEDULE, None)]:
            event.clear()
            wakeups(LAKE, source, value)
            await _settled()
            seen.append(event.is_set())
        return seen

    assert asyncio.run(scenario()) == [True, False, True, True, True, True]


def test_an_object_without_a_loop_is_not_woken_and_its_memory_goes_with_its_loop() -> None:
    async def scenario() -> tuple[int, bool]:
        wakeups = Wakeups(KINDS)
        wakeups(LAKE, "featureset", "a")  # no loop yet: nothing to wake, nothing remembered
        event = wakeups.register(LAKE)
        wakeups(LAKE, "featureset", "a")
        await _settled()
        woken = event.is_set()
        wakeups.unregister(LAKE, event)
        return len(wakeups), woken

    assert asyncio.run(scenario()) == (0, True)


def test_a_replaced_loop_is_not_unregistered_by_its_predecessor() -> None:
    async def scenario() -> int:
        wakeups = Wakeups(KINDS)
        old = wakeups.register(LAKE)
        wakeups.register(LAKE)
        wakeups.unregister(LAKE, old)
        return len(wakeups)

    assert asyncio.run(scenario()) == 1


def test_a_run_change_from_another_thread_wakes_its_owner_once() -> None:
    change = RunChange("ns", "movielens-ingest", OwnerRef("loom.dev/v1alpha1", "DataLake", "movielens", "u"),
                       WorkloadStatus("movielens-ingest-1", Phase.SUCCEEDED))

    async def scenario() -> list[bool]:
        wakeups = Wakeups(KINDS)
        event = wakeups.register(LAKE)
        seen = []
        for _ in range(2):
            event.clear()
            thread = threading.Thread(target=wakeups.run_changed, args=(change,))
            thread.start()
            thread.join()
            await _settled()
            seen.append(event.is_set())
        return seen

    assert asyncio.run(scenario()) == [True, False]


def test_own_change_is_the_generation_and_the_annotations_outside_kopf_bookkeeping() -> None:
    def body(generation: int, **annotations: str) -> dict[str, object]:
        return {"metadata": {"generation": generation, "annotations": annotations}}

    base = own_change(body(1, note="x"))
    assert own_change(body(1, note="x", **{"loom.dev/last-handled-configuration": "{}"})) == base
    assert own_change(body(2, note="x")) != base
    assert own_change(body(1, note="y")) != base
    assert own_change(body(1, note="x", **{"loom.dev/promote": "true"})) != base  # a manual request wakes


def test_the_scheduler_wakes_at_the_due_time_and_the_newest_request_wins() -> None:
    now = [T0]
    woken: list[tuple[ObjectRef, str]] = []
    done = threading.Event()

    def wake(ref: ObjectRef, source: str) -> None:
        woken.append((ref, source))
        done.set()

    scheduler = Scheduler(wake, clock=lambda: now[0])
    scheduler.at(LAKE, T0 + timedelta(hours=1))
    scheduler.at(LAKE, T0)  # replaces the hour-later request
    scheduler.start()
    try:
        assert done.wait(timeout=10)
        assert woken == [(LAKE, SCHEDULE)]
        assert scheduler.pending(LAKE) is None
        scheduler.at(LAKE, T0 + timedelta(minutes=1))
        scheduler.at(LAKE, None)  # forgotten
        assert scheduler.pending(LAKE) is None
    finally:
        scheduler.stop()


def test_an_unexpected_error_backs_off_doubling_up_to_ten_minutes() -> None:
    config = OperatorConfig(dependency_retry_seconds=15)
    assert [backoff(config, n).total_seconds() for n in (0, 1, 2, 5, 30)] == [15, 30, 60, 480, 600]


def test_a_guarded_kind_is_woken_when_its_finalizer_arrives_and_waits_for_it() -> None:
    bare = {"metadata": {"generation": 1}}
    finalized = {"metadata": {"generation": 1, "finalizers": ["other.io/x", FINALIZER]}}
    assert own_change(finalized, guarded=True) != own_change(bare, guarded=True)
    assert own_change(finalized) == own_change(bare)  # an unguarded kind does not care
    assert not reconcile_finalized(bare) and reconcile_finalized(finalized)
