"""The router's Prometheus metrics, per revision, in the text exposition format (stdlib only: the router
runs in the serving environment as well as the main one).

    loom_router_requests_total{revision, code, traffic}    inference requests answered; traffic is
                                                           "live" (clients saw it) or "mirror" (discarded)
    loom_router_request_duration_seconds{revision, traffic} histogram, from the request's last byte in
                                                           to the response's last byte out
    loom_router_mirror_dropped_total{revision}             copies not sent: the mirror was at its bound
    loom_router_weight{revision}, loom_router_mirror_percent{revision}   the table in force
    loom_router_table_reloads_total{result}                reloads of the table, "ok" or "error"

So the canary analysis reads, per revision and over an interval (Flagger's built-ins):

    request-success-rate  100 * sum(rate(loom_router_requests_total{revision="r",code!~"5.."}[1m]))
                              / sum(rate(loom_router_requests_total{revision="r"}[1m]))
    request-duration      1000 * histogram_quantile(0.99, sum by (le)
                              (rate(loom_router_request_duration_seconds_bucket{revision="r"}[1m])))

A request the router could not deliver counts under the revision it was sent to, with the status the
client got (502 when the upstream failed, 504 when it timed out).
"""

from __future__ import annotations

from bisect import bisect_left

PREFIX = "loom_router_"
# Seconds; fine below 100 ms, where a model server's p99 is judged.
BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15,
           0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
_BUCKET_LABELS = tuple(repr(b) for b in BUCKETS) + ("+Inf",)


def label(value: str) -> str:
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


class TrafficStats:
    """Requests of one revision and one kind of traffic: counts by status code and a latency histogram."""

    __slots__ = ("codes", "buckets", "total_seconds")

    def __init__(self) -> None:
        self.codes: dict[int, int] = {}
        self.buckets = [0] * (len(BUCKETS) + 1)  # not cumulative; the last one is +Inf
        self.total_seconds = 0.0

    def observe(self, code: int, seconds: float) -> None:
        codes = self.codes
        codes[code] = codes.get(code, 0) + 1
        self.buckets[bisect_left(BUCKETS, seconds)] += 1
        self.total_seconds += seconds


class Registry:
    """Every series the router exposes. Series are never removed, so counters stay monotonic across
    reloads that drop a revision and bring it back."""

    def __init__(self) -> None:
        self.traffic: dict[tuple[str, str], TrafficStats] = {}
        self.mirror_dropped: dict[str, int] = {}
        self.reloads = {"ok": 0, "error": 0}
        self.weights: dict[str, int] = {}
        self.mirror_percent: dict[str, int] = {}

    def stats(self, revision: str, traffic: str) -> TrafficStats:
        return self.traffic.setdefault((revision, traffic), TrafficStats())

    def render(self) -> bytes:
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> str:
            out.append(f"# HELP {PREFIX}{name} {help_text}\n# TYPE {PREFIX}{name} {kind}\n")
            return PREFIX + name

        series = sorted(self.traffic.items())
        name = family("requests_total", "counter", "Inference requests answered, by revision, status code and traffic.")
        for (revision, traffic), stats in series:
            for code, count in sorted(stats.codes.items()):
                out.append(f'{name}{{revision="{label(revision)}",code="{code}",traffic="{traffic}"}} {count}\n')
        name = family("request_duration_seconds", "histogram", "Inference request duration through the router.")
        for (revision, traffic), stats in series:
            labels = f'revision="{label(revision)}",traffic="{traffic}"'
            cumulative = 0
            for le, count in zip(_BUCKET_LABELS, stats.buckets):
                cumulative += count
                out.append(f'{name}_bucket{{{labels},le="{le}"}} {cumulative}\n')
            out.append(f"{name}_sum{{{labels}}} {stats.total_seconds!r}\n{name}_count{{{labels}}} {cumulative}\n")
        per_revision = (
            ("mirror_dropped_total", "counter", "Mirror copies not sent because the mirror was at its bound.",
             self.mirror_dropped),
            ("weight", "gauge", "Weight of each revision in the routing table in force.", self.weights),
            ("mirror_percent", "gauge", "Percent of inference requests copied to the mirror revision.",
             self.mirror_percent),
        )
        for suffix, kind, help_text, values in per_revision:
            name = family(suffix, kind, help_text)
            for revision, value in sorted(values.items()):
                out.append(f'{name}{{revision="{label(revision)}"}} {value}\n')
        name = family("table_reloads_total", "counter", "Reloads of the routing table, by result.")
        for result, count in sorted(self.reloads.items()):
            out.append(f'{name}{{result="{result}"}} {count}\n')
        return "".join(out).encode()
