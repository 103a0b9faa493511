"""The PromQL of a canary analysis, pure: Flagger's built-in checks written for the metrics each way of
serving exposes, and the query of any check of an analysis (a custom query arrives rendered).

- `router`: Loom's local router (components/router/router_metrics.py), one series per revision, code
  and traffic; only live traffic counts, never mirrored copies, whose answers nobody saw. The
  namespace is a label of the scrape target.
- `seldon`: Seldon Core 2's agent, `seldon_model_infer_total` and the histogram
  `seldon_model_infer_api_seconds` with labels model (the Seldon Model, one per revision), server and
  code (an HTTP status for REST, a gRPC status name for gRPC); the namespace is the pod's, as a
  PodMonitor or kubernetes_sd scrape labels it.
- `kserve`: MLServer's own REST metrics in KServe's predictor pods (starlette-exporter's
  `rest_server_requests_total` and histogram `rest_server_request_duration_seconds`, labels method,
  path, status_code), inference calls only (health probes are not counted by MLServer, metadata calls
  are left out here); the revision is the pod label `loom.dev/revision` the builder sets on each
  predictor, which the PodMonitor relabels to `revision`, beside `namespace`.

request-success-rate is the percent of requests not answered with a server error, request-duration
the p99 in milliseconds, both over the check's interval. Without requests in the interval both are
empty, which the analysis reads as no data; a revision that failed every request scores 0%."""

from __future__ import annotations

from enum import Enum

from loom.api.inferenceservice import BuiltinMetric
from loom.domain.rollout import MetricQuery


class MetricSource(str, Enum):
    """Whose metrics the analysis reads: the local router, or Seldon Core 2's or KServe's in a cluster."""

    ROUTER = "router"
    SELDON = "seldon"
    KSERVE = "kserve"


# gRPC statuses that are the server's fault, as the 5xx of HTTP (grpc-gateway maps them to 5xx).
_GRPC_SERVER_ERRORS = ("Unknown", "Internal", "Unavailable", "DataLoss", "Unimplemented", "DeadlineExceeded")
_SERVER_ERROR = {
    MetricSource.ROUTER: "5..",
    MetricSource.SELDON: "|".join(("5..",) + _GRPC_SERVER_ERRORS),
    MetricSource.KSERVE: "5..",
}
_CODE_LABEL = {MetricSource.ROUTER: "code", MetricSource.SELDON: "code", MetricSource.KSERVE: "status_code"}


def _string(value: str) -> str:
    """A PromQL string literal."""
    return '"' + value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n") + '"'


def _selector(source: MetricSource, revision: str, namespace: str) -> str:
    if source == MetricSource.ROUTER:
        return f"namespace={_string(namespace)},revision={_string(revision)},traffic=\"live\""
    if source == MetricSource.KSERVE:
        return f"namespace={_string(namespace)},revision={_string(revision)},path=~\".*/infer\""
    return f"namespace={_string(namespace)},model={_string(revision)}"


_COUNTER = {MetricSource.ROUTER: "loom_router_requests_total", MetricSource.SELDON: "seldon_model_infer_total",
            MetricSource.KSERVE: "rest_server_requests_total"}
_HISTOGRAM = {MetricSource.ROUTER: "loom_router_request_duration_seconds",
              MetricSource.SELDON: "seldon_model_infer_api_seconds",
              MetricSource.KSERVE: "rest_server_request_duration_seconds"}


def request_success_rate(source: MetricSource, revision: str, namespace: str, interval: str) -> str:
    """Percent of the revision's requests over `interval` not answered with a server error."""
    selector = _selector(source, revision, namespace)
    errors = _string(_SERVER_ERROR[source])
    # No successful series at all is 0%, not no data; without requests the denominator stays empty.
    # The ratio first: x / x is exactly 1, so a revision without errors scores exactly 100.
    counter, code = _COUNTER[source], _CODE_LABEL[source]
    return (f"100 * ((sum(rate({counter}{{{selector},{code}!~{errors}}}[{interval}])) or vector(0))"
            f" / sum(rate({counter}{{{selector}}}[{interval}])))")


def request_duration(source: MetricSource, revision: str, namespace: str, interval: str) -> str:
    """The revision's p99 latency over `interval`, in milliseconds."""
    selector = _selector(source, revision, namespace)
    return (f"1000 * histogram_quantile(0.99, sum by (le) "
            f"(rate({_HISTOGRAM[source]}_bucket{{{selector}}}[{interval}])))")


def builtin_query(name: str, source: MetricSource, revision: str, namespace: str, interval: str) -> str:
    """The query of a built-in check, by its name in `metrics[].name`."""
    metric = BuiltinMetric(name)
    build = request_success_rate if metric == BuiltinMetric.REQUEST_SUCCESS_RATE else request_duration
    return build(source, revision, namespace, interval)


def analysis_query(check: MetricQuery, source: MetricSource, revision: str, namespace: str) -> str:
    """The PromQL to run for one check of a QueryMetrics action: its custom query (placeholders already
    filled in by the rollout), or the built-in's for this source."""
    if check.query is not None:
        return check.query
    return builtin_query(check.name, source, revision, namespace, check.interval)
