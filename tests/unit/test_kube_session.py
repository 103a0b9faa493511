"""Kopf's session: the credentials Kopf's own would carry, and a pool bounded above the watches."""

from __future__ import annotations

import asyncio

import kopf

from loom.drivers.kube_session import WATCH_STREAMS, bounded_session


def test_the_session_carries_the_credentials_and_bounds_the_pool() -> None:
    info = kopf.ConnectionInfo(server="https://127.0.0.1:6443", token="t0ken", insecure=True,
                               default_namespace="team-a", priority=7)

    async def build() -> tuple[int, str, str, str | None, int]:
        context = bounded_session(info, connections=4)
        try:
            session = context.aiohttp_session
            return (session.connector.limit if session.connector else 0, session.headers["Authorization"],
                    context.server, context.default_namespace, context.priority)
        finally:
            await context.aiohttp_session.close()

    assert asyncio.run(build()) == (4 + WATCH_STREAMS, "Bearer t0ken", "https://127.0.0.1:6443", "team-a", 7)
