"""The router's metrics text: valid Prometheus exposition, read back with Prometheus' own client parser."""

from __future__ import annotations

import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "components" / "router"))
from router_metrics import BUCKETS, Registry  # noqa: E402


def samples(registry: Registry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(registry.render().decode()) for s in family.samples}


def test_requests_and_durations_are_counted_per_revision_code_and_traffic() -> None:
    registry = Registry()
    live = registry.stats('v1 "quoted"\\', "live")
    for code, seconds in [(200, 0.0004), (200, 0.004), (500, 0.02), (200, 20.0)]:
        live.observe(code, seconds)
    registry.stats("v2", "mirror").observe(200, 0.001)
    registry.mirror_dropped["v2"] = 3
    registry.weights = {"v1": 90, "v2": 10}
    registry.mirror_percent = {"v2": 20}
    registry.reloads["ok"] = 2

    got = samples(registry)
    v1 = ("revision", 'v1 "quoted"\\')
    assert got[("loom_router_requests_total", (("code", "200"), v1, ("traffic", "live")))] == 3
    assert got[("loom_router_requests_total", (("code", "500"), v1, ("traffic", "live")))] == 1
    assert got[("loom_router_requests_total", (("code", "200"), ("revision", "v2"), ("traffic", "mirror")))] == 1
    name = "loom_router_request_duration_seconds"
    buckets = {le: got[(f"{name}_bucket", (("le", le), v1, ("traffic", "live")))]
               for le in [*(repr(b) for b in BUCKETS), "+Inf"]}
    assert buckets["0.0005"] == 1 and buckets["0.005"] == 2 and buckets["0.02"] == 3 and buckets["10.0"] == 3
    assert buckets["+Inf"] == 4 == got[(f"{name}_count", (v1, ("traffic", "live")))]
    assert abs(got[(f"{name}_sum", (v1, ("traffic", "live")))] - 20.0244) < 1e-9
    assert list(buckets.values()) == sorted(buckets.values())
    assert got[("loom_router_mirror_dropped_total", (("revision", "v2"),))] == 3
    assert got[("loom_router_weight", (("revision", "v1"),))] == 90
    assert got[("loom_router_mirror_percent", (("revision", "v2"),))] == 20
    assert got[("loom_router_table_reloads_total", (("result", "ok"),))] == 2


def test_an_empty_registry_still_renders_every_family() -> None:
    families = {f.name for f in text_string_to_metric_families(Registry().render().decode())}
    assert families == {"loom_router_requests", "loom_router_request_duration_seconds", "loom_router_mirror_dropped",
                        "loom_router_weight", "loom_router_mirror_percent", "loom_router_table_reloads"}
