"""The HTTP session Kopf talks to the API server through, with a bounded connection pool.

Kopf's own session opens as many connections as requests are in flight (`limit=0`): a burst of a
thousand new objects opened ~150 TLS connections, and their buffers stayed for as long as steady
traffic kept reusing them in turn. A bound queues requests in the pool instead (back-pressure).
Every watch stream holds one connection for its whole life, so the pool keeps room for them above
the `connections` the requests share."""

from __future__ import annotations

import aiohttp
import kopf

# More than the watch streams Loom's handlers open at most: its four kinds, Jobs, the training and
# serving kinds, and Kopf's own scan of the CRDs.
WATCH_STREAMS = 16


def bounded_session(info: kopf.ConnectionInfo, connections: int) -> kopf.AiohttpSession:
    """A session with the credentials and TLS settings Kopf's own would have, and at most
    `connections` beside the watches. Built in the running event loop (aiohttp requires it)."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections + WATCH_STREAMS, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        aiohttp_session=session,
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
    )
