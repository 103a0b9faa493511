"""Concurrent recommend calls share batches and each gets exactly its own answer: its users' rows, cut
at its own k; a failed batch fails its calls only, and the next batch still runs."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import numpy as np
import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "components"))
from serve.batching import Answer, Batcher  # noqa: E402


class Model:
    """Row i of a user's answer is (user * 1000 + column); records each batch it computed."""

    def __init__(self, fail_on: Any = None) -> None:
        self.batches: list[tuple[list[Any], int]] = []
        self.release = threading.Event()
        self.fail_on = fail_on

    def __call__(self, users: list[Any], k: int) -> Answer:
        self.release.wait(5)
        self.batches.append((users, k))
        if self.fail_on in users:
            raise ConnectionError("online store unreachable")
        rows = np.array([[u * 1000 + c for c in range(k)] for u in users], np.int64).reshape(len(users), k)
        return rows, rows.astype(np.float32), np.array([u < 0 for u in users], bool)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_an_idle_model_answers_a_call_alone() -> None:
    model = Model()
    model.release.set()
    rows, scores, fallback = run(Batcher(model)([7, -1], 3))
    assert rows.tolist() == [[7000, 7001, 7002], [-1000, -999, -998]]
    assert fallback.tolist() == [False, True]
    assert model.batches == [([7, -1], 3)]


def test_calls_arriving_during_a_batch_run_together_each_cut_at_its_k() -> None:
    model = Model()
    batcher = Batcher(model)

    async def scenario() -> list[Answer]:
        first = asyncio.ensure_future(batcher([1], 2))
        await asyncio.sleep(0.05)  # the first batch is computing (held by the model)
        rest = [asyncio.ensure_future(batcher(users, k)) for users, k in (([2, 3], 4), ([4], 1), ([5], 3))]
        await asyncio.sleep(0.05)
        model.release.set()
        return await asyncio.gather(first, *rest)

    answers = run(scenario())
    assert model.batches == [([1], 2), ([2, 3, 4, 5], 4)]
    assert [a[0].tolist() for a in answers] == [
        [[1000, 1001]], [[2000, 2001, 2002, 2003], [3000, 3001, 3002, 3003]], [[4000]], [[5000, 5001, 5002]]]
    assert [a[2].tolist() for a in answers] == [[False], [False, False], [False], [False]]


def test_a_batch_never_exceeds_max_users_but_takes_at_least_one_call() -> None:
    model = Model()
    batcher = Batcher(model, max_users=3)

    async def scenario() -> None:
        first = asyncio.ensure_future(batcher([0], 1))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher(users, 1)) for users in ([1, 2], [3, 4], [5, 6, 7, 8], [9])]
        await asyncio.sleep(0.05)
        model.release.set()
        await asyncio.gather(first, *rest)

    run(scenario())
    assert [users for users, _ in model.batches] == [[0], [1, 2], [3, 4], [5, 6, 7, 8], [9]]


def test_a_failed_batch_fails_its_calls_and_the_next_batch_still_runs() -> None:
    model = Model(fail_on=2)
    batcher = Batcher(model)

    async def scenario() -> tuple[Any, ...]:
        first = asyncio.ensure_future(batcher([1], 1))
        await asyncio.sleep(0.05)
        failing = [asyncio.ensure_future(batcher(users, 1)) for users in ([2], [3])]
        await asyncio.sleep(0.05)
        model.release.set()
        results = await asyncio.gather(first, *failing, return_exceptions=True)
        later = await batcher([4], 1)
        return (*results, later)

    first, two, three, later = run(scenario())
    assert first[0].tolist() == [[1000]]
    assert isinstance(two, ConnectionError) and isinstance(three, ConnectionError)
    assert later[0].tolist() == [[4000]]


def test_a_cancelled_call_does_not_disturb_the_others() -> None:
    model = Model()
    batcher = Batcher(model)

    async def scenario() -> Answer:
        first = asyncio.ensure_future(batcher([1], 1))
        await asyncio.sleep(0.05)
        gone, kept = asyncio.ensure_future(batcher([2], 1)), asyncio.ensure_future(batcher([3], 1))
        await asyncio.sleep(0.05)
        gone.cancel()
        model.release.set()
        await first
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await kept

    assert run(scenario())[0].tolist() == [[3000]]
