"""The canary analysis' queries against a real Prometheus (Debian's `prometheus`, started as the demo
starts it) scraping Loom's real router in front of two small real model servers: a good one, and one
that fails 3 requests in 10 and answers in 20 ms (and one that is gone). The built-in checks, a custom query with its
placeholders filled in, no data, and Prometheus' own errors, through the operator's driver."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from loom.builders.canary_queries import MetricSource, analysis_query, request_duration, request_success_rate
from loom.devcluster.prometheus import prometheus_server, targets_dir
from loom.domain.rollout import MetricQuery, render_query
from loom.drivers.prometheus import Prometheus, PrometheusError, ScrapeTarget, write_targets
from tests.conftest import eventually
from tests.integration.conftest import free_port
from tests.integration.test_router import Router, Upstream, router, table, traffic, upstreams  # noqa: F401

NAMESPACE = "ml"
# Longer than the traffic takes even on a loaded machine, so every request is in the range (a range
# that starts mid-traffic sees a slice of the failure pattern, not its 30%).
INTERVAL = "5m"


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[Path, Prometheus]]:
    """A Prometheus with nothing to scrape yet (its directory, to write targets to), and a client."""
    directory = tmp_path / "prometheus"
    with prometheus_server(directory) as url:
        client = Prometheus(url)
        yield directory, client
        client.close()


def now() -> datetime:
    return datetime.now(timezone.utc)


def test_builtin_checks_tell_a_failing_canary_from_a_good_stable_revision(
        prometheus: tuple[Path, Prometheus], router: Callable[..., Router],  # noqa: F811
        upstreams: Callable[..., Upstream]) -> None:  # noqa: F811
    directory, client = prometheus
    stable, canary = upstreams("stable"), upstreams("canary", failing=True, delay=0.02)
    gone = upstreams("gone")
    gone.close()  # every request to v3 fails: the router answers 502
    running = router(table(("v1", stable, 45), ("v2", canary, 45), ("v3", gone, 10)))
    # Targets written after the start, as the operator does when a revision comes up.
    write_targets(targets_dir(directory), "recs", [ScrapeTarget(f"127.0.0.1:{running.metrics_port}",
                                           {"namespace": NAMESPACE, "inferenceservice": "recs"})])
    eventually(lambda: client.query(f'up{{namespace="{NAMESPACE}"}}', now()) == 1, timeout=30,
               what="Prometheus scraping the router")

    answers = traffic(running, clients=4, requests=150)
    by_revision = Counter(revision for _, revision, _ in answers)
    assert set(by_revision) == {"v1", "v2", "v3"}

    def scraped(revision: str) -> bool:
        total = f'sum(loom_router_requests_total{{revision="{revision}",traffic="live"}})'
        return client.query(total, now()) == by_revision[revision]

    eventually(lambda: all(map(scraped, by_revision)), timeout=20, what="the last requests in Prometheus")
    at = now()

    def value(query: str) -> float:
        result = client.query(query, at)
        assert result is not None, query
        return result

    # rate() estimates what a series counted before its first scrape (it extrapolates, clamped at zero,
    # per series), so the success and the total series of the canary are estimated a little apart: the
    # measured rate is near what the clients saw, not equal to it.
    canary = [code for code, revision, _ in answers if revision == "v2"]
    seen = 100 * sum(code == 200 for code in canary) / len(canary)
    assert abs(value(request_success_rate(MetricSource.ROUTER, "v2", NAMESPACE, INTERVAL)) - seen) <= 10, seen
    assert 60 <= seen <= 80
    assert value(request_success_rate(MetricSource.ROUTER, "v1", NAMESPACE, INTERVAL)) == 100
    assert value(request_success_rate(MetricSource.ROUTER, "v3", NAMESPACE, INTERVAL)) == 0
    # The canary sleeps 20 ms per request: its p99 lies in the 20-30 ms bucket, or later under load.
    canary_p99 = value(request_duration(MetricSource.ROUTER, "v2", NAMESPACE, INTERVAL))
    stable_p99 = value(request_duration(MetricSource.ROUTER, "v1", NAMESPACE, INTERVAL))
    assert 20 <= canary_p99 <= 2000 and 0 < stable_p99 <= 2000

    # A custom check, its placeholders filled in by the rollout: the canary's failures per second.
    template = ('sum(rate(loom_router_requests_total{namespace="{{ namespace }}",revision="{{ revision }}",'
                'code="500"}[{{ interval }}]))')
    custom = MetricQuery("errors", render_query(template, revision="v2", namespace=NAMESPACE, interval="60s"), "60s")
    assert value(analysis_query(custom, MetricSource.ROUTER, "v2", NAMESPACE)) > 0
    builtin = MetricQuery("request-success-rate", None, "60s")
    assert client.measure("request-success-rate", analysis_query(builtin, MetricSource.ROUTER, "v2", NAMESPACE),
                          at).value == pytest.approx(value(request_success_rate(MetricSource.ROUTER, "v2",
                                                                                NAMESPACE, "60s")))

    # No requests of a revision, or in another namespace: no data, not an error.
    assert client.query(request_success_rate(MetricSource.ROUTER, "v9", NAMESPACE, INTERVAL), at) is None
    assert client.query(request_duration(MetricSource.ROUTER, "v2", "elsewhere", INTERVAL), at) is None


def test_seldon_queries_are_valid_promql_without_data(prometheus: tuple[Path, Prometheus]) -> None:
    _, client = prometheus
    for build in (request_success_rate, request_duration):
        assert client.query(build(MetricSource.SELDON, "recs-3", NAMESPACE, "30s"), now()) is None


def test_nan_is_no_data_and_errors_carry_prometheus_message(prometheus: tuple[Path, Prometheus]) -> None:
    _, client = prometheus
    assert client.query("vector(0) / vector(0)", now()) is None
    assert client.query("scalar(vector(42.5))", now()) == 42.5

    with pytest.raises(PrometheusError) as bad:
        client.query('sum(rate(loom_router_requests_total{revision="v2"}[1m])', now())
    assert bad.value.error_type == "bad_data" and "unclosed left parenthesis" in bad.value.message

    with pytest.raises(PrometheusError, match="returned 2 series"):
        client.query('label_replace(vector(1), "r", "a", "", "") or label_replace(vector(1), "r", "b", "", "")',
                     now())
    with pytest.raises(PrometheusError, match="returned a matrix"):
        client.query("up[1m]", now())

    result = client.measure("errors", "rate(x[1m]", now())
    assert result.value is None and "parse error" in result.error


def test_an_unreachable_prometheus_is_an_error_naming_it() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = Prometheus(url, timeout=2)
    with pytest.raises(PrometheusError, match=f"Prometheus at {url} did not answer"):
        client.query("1", now())
    assert client.measure("request-duration", "1", now()).error.startswith(f"Prometheus at {url}")
