"""The operator skeleton against the real API server: status and conditions per generation,
Events, metrics and liveness, and no writes when a restarted operator finds nothing new."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client import REGISTRY

from tests.integration.conftest import Kubectl, Operator, condition, eventually, sample, start_operator


def _reconciled(kc: Kubectl, kind: str, name: str) -> dict:
    obj = kc.get(kind, name)
    status = obj.get("status", {})
    assert status.get("observedGeneration") == obj["metadata"]["generation"], status
    assert condition(obj, "Ready") is not None, status
    return obj


def _ok_count(kind: str) -> float:
    """Successful reconciles so far; the operator runs in this process, so its registry is ours."""
    return REGISTRY.get_sample_value("loom_reconcile_total", {"kind": kind, "result": "ok"}) or 0.0


def _resting_lake() -> dict:
    """The DataLake sample without ingests or maintenance: nothing left to do once its tables exist."""
    lake = sample("datalake")
    lake["spec"]["ingest"] = []
    lake["spec"].pop("maintenance")
    return lake


def test_samples_reach_their_conditions(kc: Kubectl, operator: Operator) -> None:
    for kind in ("datalake", "featureset", "trainingjob", "inferenceservice"):
        kc.apply(sample(kind))
    lake = eventually(lambda: _reconciled(kc, "datalake", "movielens"), what="DataLake status")
    assert condition(lake, "CatalogReady") is not None
    # The lake has no data yet (its ingest sources are empty), so everything downstream waits and says why.
    for kind, name in (("featureset", "user-features"), ("trainingjob", "movielens-two-tower"),
                       ("inferenceservice", "movie-recommender")):
        obj = eventually(lambda: _reconciled(kc, kind, name), what=f"{kind} status")
        ready = condition(obj, "Ready")
        assert ready["status"] != "True" and ready["reason"] and ready["message"], ready
    tj = kc.get("trainingjob", "movielens-two-tower")
    assert condition(tj, "Ready")["reason"] == "FeatureSetNotReady"

    def warning_event() -> bool:
        events = kc.run("get", "events", "--field-selector", "involvedObject.name=movielens-two-tower", "-o",
                        "jsonpath={range .items[*]}{.type}/{.reason}{'\\n'}{end}").stdout
        return "Warning/FeatureSetNotReady" in events

    eventually(warning_event, what="a Warning event for the TrainingJob")


def test_missing_reference_is_reported_by_name(kc: Kubectl, operator: Operator) -> None:
    kc.apply(sample("featureset"))
    fs = eventually(lambda: _reconciled(kc, "featureset", "user-features"))
    ready = condition(fs, "Ready")
    assert (ready["reason"], ready["message"]) == ("DataLakeNotFound", 'DataLake "movielens" does not exist')


def test_spec_change_is_observed_with_its_generation(kc: Kubectl, operator: Operator) -> None:
    lake = _resting_lake()
    kc.apply(lake)
    first = eventually(lambda: _reconciled(kc, "datalake", "movielens"))
    lake["spec"]["tables"][1]["columns"].append({"name": "imdbId", "type": "long"})
    kc.apply(lake)
    second = eventually(lambda: _reconciled(kc, "datalake", "movielens")["metadata"]["generation"] == 2 and
                        _reconciled(kc, "datalake", "movielens"))
    assert second["status"]["observedGeneration"] == 2
    assert all(c["observedGeneration"] == 2 for c in second["status"]["conditions"])
    ready_before, ready_after = condition(first, "Ready"), condition(second, "Ready")
    assert ready_after["lastTransitionTime"] == ready_before["lastTransitionTime"]  # no flip, no new time


def test_metrics_and_liveness(kc: Kubectl, operator: Operator) -> None:
    kc.apply(_resting_lake())
    eventually(lambda: _reconciled(kc, "datalake", "movielens"))

    def scraped() -> str:
        try:
            text = urllib.request.urlopen(operator.metrics_url, timeout=5).read().decode()
        except urllib.error.URLError as exc:
            raise AssertionError(f"metrics not served yet: {exc}") from exc
        assert 'loom_reconcile_total{kind="DataLake",result="ok"}' in text
        return text

    text = eventually(scraped, what="reconcile metrics")
    assert 'loom_reconcile_duration_seconds_count{kind="DataLake"}' in text
    with urllib.request.urlopen(operator.liveness_url, timeout=5) as response:
        assert response.status == 200


def test_restart_writes_nothing(kc: Kubectl, namespace: str) -> None:
    isvc = sample("inferenceservice")
    isvc["spec"]["model"] = {"uri": "models:/movielens-two-tower@champion"}
    first = start_operator(namespace)
    with first.runner:
        kc.apply(_resting_lake())
        kc.apply(isvc)
        eventually(lambda: _reconciled(kc, "datalake", "movielens"))
        eventually(lambda: _reconciled(kc, "inferenceservice", "movie-recommender"))
    before = {k: kc.get(k, n) for k, n in (("datalake", "movielens"), ("inferenceservice", "movie-recommender"))}

    counts = {kind: _ok_count(kind) for kind in ("DataLake", "InferenceService")}
    second = start_operator(namespace)
    with second.runner:
        eventually(lambda: all(_ok_count(k) > n for k, n in counts.items()),
                   what="the restarted operator to resume both objects")
    for kind, obj in before.items():
        now = kc.get(kind, obj["metadata"]["name"])
        assert now["status"] == obj["status"]
        assert now["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"], kind
