"""The canary analysis' PromQL: Flagger's built-ins for the router and for Seldon Core 2, written out in
full (what Prometheus runs is reviewed here; tests/integration/test_prometheus.py runs them), label
values quoted, and a custom query reaching Prometheus as the rollout rendered it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from loom.builders.canary_queries import (
    MetricSource,
    analysis_query,
    builtin_query,
    request_duration,
    request_success_rate,
)
from loom.domain.rollout import MetricQuery, render_query

ROUTER_LIVE = 'namespace="ml",revision="recs-2",traffic="live"'
SELDON_MODEL = 'namespace="ml",model="recs-2"'
SELDON_SERVER_ERRORS = "5..|Unknown|Internal|Unavailable|DataLoss|Unimplemented|DeadlineExceeded"
KSERVE_INFER = 'namespace="ml",revision="recs-2",path=~".*/infer"'


@pytest.mark.parametrize("source, expected", [
    (MetricSource.ROUTER,
     f'100 * ((sum(rate(loom_router_requests_total{{{ROUTER_LIVE},code!~"5.."}}[90s])) or vector(0))'
     f' / sum(rate(loom_router_requests_total{{{ROUTER_LIVE}}}[90s])))'),
    (MetricSource.SELDON,
     f'100 * ((sum(rate(seldon_model_infer_total{{{SELDON_MODEL},code!~"{SELDON_SERVER_ERRORS}"}}[90s])) or vector(0))'
     f' / sum(rate(seldon_model_infer_total{{{SELDON_MODEL}}}[90s])))'),
    (MetricSource.KSERVE,
     f'100 * ((sum(rate(rest_server_requests_total{{{KSERVE_INFER},status_code!~"5.."}}[90s])) or vector(0))'
     f' / sum(rate(rest_server_requests_total{{{KSERVE_INFER}}}[90s])))'),
])
def test_request_success_rate_is_percent_of_requests_without_a_server_error(source: MetricSource,
                                                                             expected: str) -> None:
    assert request_success_rate(source, "recs-2", "ml", "90s") == expected


@pytest.mark.parametrize("source, expected", [
    (MetricSource.ROUTER,
     f"1000 * histogram_quantile(0.99, sum by (le) (rate(loom_router_request_duration_seconds_bucket"
     f"{{{ROUTER_LIVE}}}[1m])))"),
    (MetricSource.SELDON,
     f"1000 * histogram_quantile(0.99, sum by (le) (rate(seldon_model_infer_api_seconds_bucket"
     f"{{{SELDON_MODEL}}}[1m])))"),
    (MetricSource.KSERVE,
     f"1000 * histogram_quantile(0.99, sum by (le) (rate(rest_server_request_duration_seconds_bucket"
     f"{{{KSERVE_INFER}}}[1m])))"),
])
def test_request_duration_is_the_p99_in_milliseconds(source: MetricSource, expected: str) -> None:
    assert request_duration(source, "recs-2", "ml", "1m") == expected


def test_label_values_are_quoted_as_promql_strings() -> None:
    query = request_duration(MetricSource.ROUTER, 'a"b\\c', "n\ns", "1m")
    assert 'namespace="n\\ns",revision="a\\"b\\\\c"' in query


@pytest.mark.parametrize("name, build", [
    ("request-success-rate", request_success_rate),
    ("request-duration", request_duration),
])
def test_builtins_by_name(name: str, build: Callable[[MetricSource, str, str, str], str]) -> None:
    for source in MetricSource:
        assert builtin_query(name, source, "r", "ns", "30s") == build(source, "r", "ns", "30s")


def test_an_unknown_builtin_is_refused() -> None:
    with pytest.raises(ValueError, match="'error-rate' is not a valid BuiltinMetric"):
        builtin_query("error-rate", MetricSource.ROUTER, "r", "ns", "30s")


def test_a_builtin_check_gets_the_sources_query_over_its_interval() -> None:
    check = MetricQuery("request-duration", None, "45s")
    assert analysis_query(check, MetricSource.SELDON, "recs-2", "ml") == request_duration(
        MetricSource.SELDON, "recs-2", "ml", "45s")


def test_a_custom_check_runs_as_the_rollout_rendered_it() -> None:
    template = ('sum(rate(my_errors{ns="{{namespace}}", rev="{{ revision }}"}[{{ interval }}]))'
                ' / sum(rate(my_requests{rev="{{  revision  }}"}[{{ interval }}]))')
    rendered = render_query(template, revision="recs-2", namespace="ml", interval="90s")
    check = MetricQuery("error-ratio", rendered, "90s")
    assert analysis_query(check, MetricSource.ROUTER, "recs-2", "ml") == (
        'sum(rate(my_errors{ns="ml", rev="recs-2"}[90s])) / sum(rate(my_requests{rev="recs-2"}[90s]))')
