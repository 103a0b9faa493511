"""Prometheus as the canary analysis reads it: one instant query at a given time, one number; and,
on one machine, what it scrapes: file_sd target files in a directory Prometheus watches
(`write_targets`), one per InferenceService, as a PodMonitor would select its pods in a cluster.

Over the HTTP API (`POST /api/v1/query`, form-encoded so a long custom query is no URL), with
urllib3. An empty answer or NaN (0/0: a revision without requests) is no data, `None`; everything
that keeps a number from coming back (Prometheus unreachable, a query it refuses, an answer of
several series) is a `PrometheusError` carrying Prometheus' own message, so a failed check can say
why in the InferenceService's status."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import urllib3

from loom.domain.rollout import MetricResult

TIMEOUT_SECONDS = 10.0


class PrometheusError(Exception):
    """No number from Prometheus. `error_type` is Prometheus' errorType (bad_data, execution, timeout,
    ...) when it answered with one, else empty."""

    def __init__(self, message: str, error_type: str = "") -> None:
        super().__init__(f"{error_type}: {message}" if error_type else message)
        self.message = message
        self.error_type = error_type


class Prometheus:
    """A client of one Prometheus server; `timeout` bounds each query, both in Prometheus (its query
    timeout) and on the wire."""

    def __init__(self, url: str, timeout: float = TIMEOUT_SECONDS) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        # The wire waits a little longer than Prometheus, so its own timeout message arrives.
        self._http = urllib3.PoolManager(
            maxsize=4, retries=False, timeout=urllib3.Timeout(connect=timeout, read=timeout + 2))

    def close(self) -> None:
        self._http.clear()

    def query(self, promql: str, at: datetime) -> float | None:
        """The value of `promql` at `at` (an aware datetime): one number, or None for no data."""
        fields = {"query": promql, "time": f"{at.timestamp():.3f}", "timeout": f"{self.timeout:g}"}
        try:
            response = self._http.request("POST", f"{self.url}/api/v1/query", fields=fields, encode_multipart=False)
        except urllib3.exceptions.HTTPError as exc:
            raise PrometheusError(f"Prometheus at {self.url} did not answer: {exc}") from exc
        try:
            body = json.loads(response.data)
        except ValueError:
            text = response.data.decode(errors="replace").strip()[:300]
            raise PrometheusError(f"Prometheus at {self.url} answered HTTP {response.status}: {text}") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            body = body if isinstance(body, dict) else {}
            raise PrometheusError(str(body.get("error") or f"HTTP {response.status}"), str(body.get("errorType", "")))
        return _one_number(body.get("data") or {})

    def measure(self, name: str, promql: str, at: datetime) -> MetricResult:
        """One check's result: a failure to get a number is observed (in `error`), not raised."""
        try:
            return MetricResult(name, self.query(promql, at))
        except PrometheusError as exc:
            return MetricResult(name, None, str(exc))


def _one_number(data: dict[str, Any]) -> float | None:
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list):
        return _number(result[1])
    if kind != "vector" or not isinstance(result, list):
        raise PrometheusError(f"the query returned a {kind}, not a number: a check needs an instant vector or scalar")
    if not result:
        return None
    if len(result) > 1:
        series = ", ".join(json.dumps(s.get("metric", {}), sort_keys=True) for s in result[:3])
        raise PrometheusError(f"the query returned {len(result)} series ({series}{', ...' if len(result) > 3 else ''}),"
                              " a check needs one: aggregate them, e.g. with sum()")
    return _number(result[0]["value"][1])


def _number(text: str) -> float | None:
    value = float(text)  # Prometheus writes NaN, +Inf and -Inf as Python reads them
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class ScrapeTarget:
    """One `host:port` serving /metrics, and the labels its series get (e.g. namespace, revision)."""

    address: str
    labels: Mapping[str, str] = field(default_factory=dict)


def write_targets(directory: Path, name: str, targets: Sequence[ScrapeTarget]) -> None:
    """Replace the targets file `<directory>/<name>.json` (atomically: Prometheus re-reads it by itself);
    no targets removes it."""
    path = directory / f"{name}.json"
    if not targets:
        path.unlink(missing_ok=True)
        return
    directory.mkdir(parents=True, exist_ok=True)
    groups = [{"targets": [t.address], "labels": dict(t.labels)} for t in targets]
    new = path.with_name(f".{path.name}.new")
    new.write_text(json.dumps(groups, indent=1))
    os.replace(new, path)
