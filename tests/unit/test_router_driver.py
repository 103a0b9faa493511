"""The operator reads the revisions of the router's table in force from the router's own metrics, as the
router renders them (components/router/router_metrics.py), over HTTP; a router that does not answer
routes nothing."""

from __future__ import annotations

import http.server
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from loom.devcluster.served import free_port
from loom.drivers.router import routed

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "components" / "router"))
from router_metrics import Registry  # noqa: E402


@pytest.fixture
def metrics() -> Iterator[tuple[int, Registry]]:
    registry = Registry()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = registry.render()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], registry
    server.shutdown()
    server.server_close()


def test_the_revisions_of_the_table_in_force_are_read_from_the_metrics(metrics: tuple[int, Registry]) -> None:
    port, registry = metrics
    registry.weights = {"recs-v1": 100, "recs-v2": 0}
    registry.stats("recs-v3", "live").observe(200, 0.01)  # served earlier, no longer in the table
    assert routed(port) == frozenset({"recs-v1", "recs-v2"})
    registry.weights = {"recs-v2": 100}
    assert routed(port) == frozenset({"recs-v2"})


def test_a_router_that_does_not_answer_routes_nothing() -> None:
    assert routed(free_port(), timeout=0.5) is None
