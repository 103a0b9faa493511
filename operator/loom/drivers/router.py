"""Loom's local router (components/router) as the operator reads it: the revisions of the routing
table in force, from its metrics (`loom_router_weight{revision}`), so that a retired revision's server
is stopped only once the router has reloaded a table without it and no new request can reach it."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 1.0
_WEIGHT = re.compile(r'^loom_router_weight\{revision="([^"]+)"\}', re.MULTILINE)


def routed(metrics_port: int, timeout: float = TIMEOUT_SECONDS) -> frozenset[str] | None:
    """The revisions the router on `metrics_port` routes to now; None when it does not answer (it is
    down or starting, so it routes nothing)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=timeout) as answer:
            text = answer.read().decode()
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return frozenset(_WEIGHT.findall(text))
