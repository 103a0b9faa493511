"""Natural batching of concurrent recommend calls: a call that finds the model idle runs at once; calls
that arrive while a batch computes wait and run together as the next batch. No timer, so an idle
server adds no latency, and under load one tower run and one matrix product serve many requests.

MLServer's adaptive batching does not fit this API: it concatenates every input along its first
dimension and splits answers by one input's size, so a request's scalar `k` beside several users
would be mis-split. Here each call keeps its own users and k (the batch runs with the largest k; a
shorter answer is the prefix, since top-k orders ties by item row)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Answer = tuple[np.ndarray, np.ndarray, np.ndarray]  # item rows [n, k], scores [n, k], fallback [n]


@dataclass
class _Call:
    users: Sequence[Any]
    k: int
    answer: asyncio.Future[Answer] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Batcher:
    """Runs `compute(users, k)` in a worker thread, one batch at a time, so the event loop keeps
    reading requests meanwhile (numpy and onnxruntime release the GIL)."""

    def __init__(self, compute: Callable[[list[Any], int], Answer], max_users: int = 64) -> None:
        self._compute = compute
        self._max_users = max_users
        self._waiting: list[_Call] = []
        self._draining = False

    async def __call__(self, users: Sequence[Any], k: int) -> Answer:
        call = _Call(users, k)
        self._waiting.append(call)
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await call.answer

    def _next_batch(self) -> list[_Call]:
        """The oldest waiting calls up to max_users users (always at least one call)."""
        taken, users = 0, 0
        for call in self._waiting:
            if taken and users + len(call.users) > self._max_users:
                break
            taken, users = taken + 1, users + len(call.users)
        batch, self._waiting = self._waiting[:taken], self._waiting[taken:]
        return batch

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._next_batch()
                users = [u for call in batch for u in call.users]
                try:
                    rows, scores, fallback = await asyncio.to_thread(
                        self._compute, users, max(call.k for call in batch))
                except Exception as error:  # every call of the batch shares its failure
                    for call in batch:
                        if not call.answer.done():
                            call.answer.set_exception(error)
                    continue
                start = 0
                for call in batch:
                    end = start + len(call.users)
                    if not call.answer.done():  # its client may have gone
                        call.answer.set_result((rows[start:end, :call.k], scores[start:end, :call.k],
                                                fallback[start:end]))
                    start = end
        finally:
            self._draining = False
