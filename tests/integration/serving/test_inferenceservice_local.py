"""An InferenceService end to end with the embedded default: the operator on a real kube-apiserver,
versions in a real MLflow registry, one real MLServer process per revision running Loom's recommender
over online features materialized by Feast into a real Redis, the router in front, and a real
Prometheus scraping the router, against which the canary analysis runs its PromQL. The tests are the
clients: they send recommendation requests through the InferenceService's url throughout."""

from __future__ import annotations

import json
import random
import shutil
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from prometheus_client import REGISTRY

from loom.config import ExecutorKind
from loom.devcluster.prometheus import prometheus_server, targets_dir
from loom.domain.feature_views import feast_project
from loom.drivers import feast_store
from loom.drivers.feast_store import OnlineKind, StoreSettings
from loom.features.materialize import run as materialize
from tests.conftest import eventually
from tests.integration.conftest import Kubectl, Operator, condition, start_operator
from tests.integration.features.conftest import USER_FEATURE_SPEC, Lake, definition_for, request_for
from tests.integration.serving.conftest import TRAINED_USERS, Trained, request
from tests.support.registry import Registry

pytestmark = pytest.mark.integration

MODEL = "movielens-two-tower"
ISVC = "recommender"


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts", MODEL)


@pytest.fixture
def features(kc: Kubectl, namespace: str, tmp_path: Path, redis_server: str, lake: Lake,
             movielens_slice: dict[str, pa.Table]) -> str:
    """The users' features online in the namespace's Feast project (the FeatureSet controller's work,
    played here), and the FeatureSet object the InferenceService names. Its Redis address."""
    settings = StoreSettings(feast_project(namespace), f"sqlite:///{tmp_path / 'registry.db'}", OnlineKind.REDIS,
                             redis_server)
    table = lake.table(movielens_slice["user_features"], name="user_features")
    definition = definition_for(settings, lake)
    feast_store.apply(settings, definition)
    assert materialize(request_for(definition, settings, lake, table.current_snapshot().snapshot_id)).passed
    kc.apply({"apiVersion": "loom.dev/v1alpha1", "kind": "FeatureSet", "metadata": {"name": "user-features"},
              "spec": USER_FEATURE_SPEC})
    return redis_server


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    directory = tmp_path / "prometheus"
    with prometheus_server(directory) as url:
        yield url, targets_dir(directory)


def local_operator(namespace: str, tmp_path: Path, registry: Registry, features: str,
                   prometheus: tuple[str, Path]) -> Operator:
    """A fresh operator of this module's settings; every one keeps its local executor's state in
    `tmp_path/state`, so a second one is the first restarted on the same machine."""
    url, targets = prometheus
    return start_operator(namespace, executor=ExecutorKind.LOCAL, controllers=["InferenceService"],
                          state_dir=tmp_path / "state", mlflow_tracking_uri=registry.uri, feast_redis=features,
                          prometheus_url=url, prometheus_targets_dir=targets, registry_poll_seconds=2)


def delete_inferenceservice(kc: Kubectl) -> None:
    """Deleted while an operator runs: its finalizer stops the model servers and the router."""
    kc.run("delete", "inferenceservice", ISVC, "--ignore-not-found", "--timeout=60s")


def left_nothing(running: Operator, tmp_path: Path) -> None:
    assert running.runner.exception is None, running.runner.output
    assert not list((tmp_path / "state" / "runs").glob("*/*")), "processes left after the deletion"


@pytest.fixture
def op(kc: Kubectl, namespace: str, tmp_path: Path, registry: Registry, features: str,
       prometheus: tuple[str, Path]) -> Iterator[Operator]:
    running = local_operator(namespace, tmp_path, registry, features, prometheus)
    with running.runner:
        yield running
        delete_inferenceservice(kc)
    left_nothing(running, tmp_path)


@pytest.fixture
def operators(kc: Kubectl, namespace: str, tmp_path: Path, registry: Registry, features: str,
              prometheus: tuple[str, Path]) -> Iterator[Callable[[], Operator]]:
    """Operators for the test to run one after another on the same state (`local_operator`); at
    teardown one more deletes the InferenceService, so no process is left whatever the test did."""
    def start() -> Operator:
        return local_operator(namespace, tmp_path, registry, features, prometheus)
    yield start
    last = start()
    with last.runner:
        delete_inferenceservice(kc)
    left_nothing(last, tmp_path)


def broken(trained: Trained, into: Path, share: float = 0.3) -> Path:
    """A version that fails `share` of the requests of known users: its user list is shifted by fake
    users, so the last `share` of the real ones index past the tower's embedding table (an error
    MLServer answers 500), as a model exported with the wrong id map would."""
    shutil.copytree(trained.files, into)
    users = json.loads((into / "users.json").read_text())
    fakes = [-(i + 1) for i in range(round(len(users) * share))]
    (into / "users.json").write_text(json.dumps(fakes + users))
    return into


@dataclass
class Traffic:
    """Clients sending recommendation requests for known users through the InferenceService's url until
    stopped: every answer's status and the version that answered."""

    url: str
    answers: list[tuple[int, str | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        rng = random.Random(0)
        while not self.stop.is_set():
            body = json.dumps(request([rng.randint(1, TRAINED_USERS)], k=5)).encode()
            req = urllib.request.Request(f"{self.url}/v2/models/{ISVC}/infer", data=body,
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as answer:
                    version = json.loads(answer.read()).get("parameters", {}).get("modelVersion")
                    self.answers.append((answer.status, version))
            except urllib.error.HTTPError as error:
                self.answers.append((error.code, None))
            except OSError:
                self.answers.append((0, None))
            self.stop.wait(0.03)


@pytest.fixture
def traffic() -> Iterator[list[Traffic]]:
    started: list[Traffic] = []
    yield started
    for t in started:
        t.stop.set()


def start_traffic(started: list[Traffic], url: str, clients: int = 2) -> Traffic:
    t = Traffic(url)
    for _ in range(clients):
        threading.Thread(target=t.run, daemon=True).start()
    started.append(t)
    return t


def only(clients: Traffic, version: str, since: int = 0) -> None:
    """Once the router has reloaded its table (within a second of the status saying so), every answer
    comes from `version`: 40 answers in a row after `since`."""
    def settled() -> bool:
        recent = clients.answers[since:][-40:]
        return len(recent) == 40 and all(a == (200, version) for a in recent)
    eventually(settled, timeout=60, interval=0.5, what=f"answers from version {version} only")


def inferenceservice(**canary: Any) -> dict[str, Any]:
    return {"apiVersion": "loom.dev/v1alpha1", "kind": "InferenceService", "metadata": {"name": ISVC},
            "spec": {"model": {"uri": f"models:/{MODEL}@champion"},
                     "predictor": {"featureSetRef": {"name": "user-features"}},
                     "rollout": {"canary": {"interval": "10s", "threshold": 2, "stepWeights": [30, 60],
                                            "fromAlias": "challenger",
                                            "metrics": [{"name": "request-success-rate",
                                                         "thresholdRange": {"min": 99}}], **canary}}}}


def status(kc: Kubectl) -> dict[str, Any]:
    return kc.get("inferenceservice", ISVC).get("status", {})


def events(kc: Kubectl) -> list[tuple[str, str]]:
    found = json.loads(kc.run("get", "events", "--field-selector", f"involvedObject.name={ISVC}", "-o",
                              "json").stdout)["items"]
    return [(e["reason"], e["message"]) for e in found]


def processes(tmp_path: Path, namespace: str) -> dict[str, int]:
    """Every attempt the local executor has started for the namespace (`<workload>/attempt-<n>`) and
    its supervisor's pid: a process restarted or replaced shows as another attempt or pid."""
    found = {}
    for path in (tmp_path / "state" / "runs" / namespace).glob("*/attempt-*/pid.json"):
        try:
            found[f"{path.parent.parent.name}/{path.parent.name}"] = json.loads(path.read_text())["pid"]
        except FileNotFoundError:
            continue  # a workload deleted meanwhile (a retired revision)
    return found


def alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie has)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def annotations(kc: Kubectl) -> dict[str, str]:
    return kc.get("inferenceservice", ISVC)["metadata"].get("annotations", {})


def set_interval(kc: Kubectl, interval: str) -> None:
    """Change the canary's interval and wait until the operator has reconciled the new spec."""
    patch = json.dumps({"spec": {"rollout": {"canary": {"interval": interval}}}})
    kc.run("patch", "inferenceservice", ISVC, "--type", "merge", "-p", patch)
    def seen() -> bool:
        obj = kc.get("inferenceservice", ISVC)
        return obj.get("status", {}).get("observedGeneration") == obj["metadata"]["generation"]
    eventually(seen, timeout=60, interval=0.5, what=f"the interval {interval} reconciled")


def serving(kc: Kubectl) -> dict[str, Any]:
    """The status once the stable revision serves: Ready, with a url."""
    def ready() -> dict[str, Any] | None:
        s = status(kc)
        ok = (condition(kc.get("inferenceservice", ISVC), "Ready") or {}).get("status") == "True"
        return s if ok and s.get("url") else None
    return eventually(ready, timeout=180, interval=1, what="the InferenceService Ready with a url")


def test_champion_is_served_and_a_challenger_is_promoted_by_canary(
        kc: Kubectl, op: Operator, registry: Registry, trained: Trained, traffic: list[Traffic]) -> None:
    assert registry.register(trained.files, "champion") == "1"
    kc.apply(inferenceservice())
    first = serving(kc)
    assert first["phase"] == "Initialized" and first["stable"]["modelVersion"] == "1"
    clients = start_traffic(traffic, first["url"])
    eventually(lambda: len(clients.answers) >= 20, what="answers from version 1")
    assert {a for a in clients.answers[:20]} == {(200, "1")}

    assert registry.register(trained.files, "challenger") == "2"
    done = eventually(lambda: (s := status(kc)).get("phase") == "Succeeded" and s, timeout=300, interval=1,
                      what="the challenger promoted")
    assert done["stable"]["modelVersion"] == "2" and done["failedChecks"] == 0 and done["iterations"] >= 2
    assert registry.alias("champion") == "2"
    reasons = [r for r, _ in events(kc)]
    for reason in ("CanaryStarted", "CanaryWeight", "Promoting", "Finalising", "Succeeded"):
        assert reason in reasons, reasons
    versions = Counter(v for code, v in clients.answers if code == 200)
    assert versions["1"] and versions["2"]  # both served along the way
    assert all(code == 200 for code, _ in clients.answers), Counter(c for c, _ in clients.answers)
    # The old revision is gone: only the new one and the router are left.
    only(clients, "2")


def test_a_failing_canary_is_rolled_back_while_the_stable_keeps_serving(
        kc: Kubectl, op: Operator, registry: Registry, trained: Trained, traffic: list[Traffic],
        tmp_path: Path) -> None:
    registry.register(trained.files, "champion")
    kc.apply(inferenceservice())
    clients = start_traffic(traffic, serving(kc)["url"])
    registry.register(broken(trained, tmp_path / "broken"), "challenger")
    done = eventually(lambda: (s := status(kc)).get("phase") == "Failed" and s, timeout=300, interval=1,
                      what="the failing canary rolled back")
    assert done["stable"]["modelVersion"] == "1" and done["canary"]["modelVersion"] == "2"
    assert done["failedChecks"] == 2 and done["canaryWeight"] == 0
    assert registry.alias("champion") == "1"
    rolled = [m for r, m in events(kc) if r == "RolledBack" and m.startswith("rolling back")]
    assert rolled and "request-success-rate" in rolled[0] and "@champion stays on version 1" in rolled[0], rolled
    canary_ready = condition(kc.get("inferenceservice", ISVC), "CanaryReady")
    assert canary_ready is not None and canary_ready["reason"] == "RolledBack"
    # The operator (in this process) exports the same as gauges.
    gauge = {"namespace": kc.namespace, "name": ISVC}
    assert REGISTRY.get_sample_value("loom_canary_failed_checks", gauge) == 2
    assert REGISTRY.get_sample_value("loom_canary_weight", gauge) == 0
    assert REGISTRY.get_sample_value("loom_canary_check_passed", gauge | {"metric": "request-success-rate"}) == 0
    # The stable revision answered throughout; failures came only from the canary's share.
    stable = [code for code, v in clients.answers if v == "1"]
    assert stable and all(code == 200 for code in stable)
    count = len(clients.answers)
    only(clients, "1", since=count)


def test_an_operator_restart_mid_rollout_resumes_at_the_same_step(
        kc: Kubectl, namespace: str, operators: Callable[[], Operator], registry: Registry, trained: Trained,
        traffic: list[Traffic], tmp_path: Path) -> None:
    registry.register(trained.files, "champion")
    first = operators()
    with first.runner:
        kc.apply(inferenceservice(stepWeights=[20, 40, 60, 80]))
        clients = start_traffic(traffic, serving(kc)["url"])
        registry.register(trained.files, "challenger")
        eventually(lambda: (s := status(kc)).get("phase") == "Progressing" and (s.get("canaryWeight") or 0) >= 20
                   and s.get("iterations", 0) >= 1, timeout=300, interval=1, what="the canary past its first analysis")
    assert first.runner.exception is None, first.runner.output

    before, pids = status(kc), processes(tmp_path, namespace)
    assert before["phase"] == "Progressing" and before["canary"]["modelVersion"] == "2", before
    assert {name.split("/")[0] for name in pids} == {f"{ISVC}-v1", f"{ISVC}-v2", f"{ISVC}-router"}, pids
    assert all(alive(pid) for pid in pids.values()), pids
    # Without an operator the router and both revisions go on serving.
    count = len(clients.answers)
    eventually(lambda: len(clients.answers) >= count + 10, what="answers while no operator runs")

    samples: list[tuple[dict[str, Any], dict[str, int]]] = []

    def succeeded() -> dict[str, Any] | None:
        s = status(kc)
        samples.append((s, processes(tmp_path, namespace)))
        return s if s.get("phase") == "Succeeded" else None

    second = operators()
    retired = f"{ISVC}-v1/"
    with second.runner:
        done = eventually(succeeded, timeout=300, interval=1, what="the resumed canary promoted")
        # The old revision's server goes once the router no longer routes to it.
        kept = eventually(lambda: (p := processes(tmp_path, namespace)) and not any(k.startswith(retired) for k in p)
                          and p, timeout=60, interval=0.5, what="version 1's server retired")
    assert second.runner.exception is None, second.runner.output

    progressing = [(s, p) for s, p in samples if s.get("phase") == "Progressing"]
    assert progressing, "the status was never seen Progressing after the restart"
    for s, running in progressing:
        # The same rollout, not one started again: its clock, its counters and its step are kept...
        assert s["lastTransitionTime"] == before["lastTransitionTime"], (s, before)
        assert s["canaryWeight"] >= before["canaryWeight"] and s["iterations"] >= before["iterations"], (s, before)
        assert s["stable"] == before["stable"] and s["canary"] == before["canary"], (s, before)
        # ...served by the processes the first operator started.
        assert running == pids, (running, pids)
    iterations = [s.get("iterations", 0) for s, _ in samples]
    assert iterations == sorted(iterations), iterations
    assert all(s.get("failedChecks") == before["failedChecks"] == 0 for s, _ in samples), samples

    assert done["stable"]["modelVersion"] == "2" and done["failedChecks"] == 0
    assert done["iterations"] >= 4, done  # every step's analysis ran, across both operators
    assert registry.alias("champion") == "2"
    # The router and the promoted revision kept their processes through the promotion too.
    assert kept == {k: v for k, v in pids.items() if not k.startswith(retired)}, (kept, pids)
    reasons = [r for r, _ in events(kc)]
    assert reasons.count("CanaryStarted") == 1, reasons
    steps = [m.split(" to ")[1].split("%")[0] for r, m in events(kc) if r == "CanaryWeight"]
    assert len(steps) == len(set(steps)), steps  # no step was taken twice
    assert all(code == 200 for code, _ in clients.answers), Counter(c for c, _ in clients.answers)


def test_the_promote_and_abort_annotations_act_on_the_canary_under_analysis(
        kc: Kubectl, op: Operator, registry: Registry, trained: Trained, traffic: list[Traffic]) -> None:
    registry.register(trained.files, "champion")
    # An interval no test waits for: the canary moves only when asked.
    kc.apply(inferenceservice(interval="1h", stepWeights=[20, 40, 60, 80]))
    clients = start_traffic(traffic, serving(kc)["url"])

    def at_first_step(version: str) -> dict[str, Any] | None:
        s = status(kc)
        ok = s.get("phase") == "Progressing" and s.get("canaryWeight") == 20 \
            and (s.get("canary") or {}).get("modelVersion") == version
        return s if ok else None

    registry.register(trained.files, "challenger")
    eventually(lambda: at_first_step("2"), timeout=300, interval=1, what="version 2 at its first step")
    kc.run("annotate", "inferenceservice", ISVC, "loom.dev/promote=true")
    promoting = eventually(lambda: (s := status(kc)).get("phase") == "Promoting" and s, timeout=60, interval=0.5,
                           what="the promotion asked for")
    assert promoting["iterations"] == 0 and promoting["failedChecks"] == 0, promoting  # no analysis ran
    # The annotation was acted on once: the alias moved and the request was cleared.
    assert registry.alias("champion") == "2"
    assert "loom.dev/promote" not in annotations(kc)
    promoted = [m for r, m in events(kc) if r == "Promoting" and m.startswith("promoting")]
    assert promoted and "promotion requested by annotation loom.dev/promote" in promoted[0], promoted

    # Promoting lasts one interval, then Finalising another: a short one lets the promotion finish.
    set_interval(kc, "10s")
    done = eventually(lambda: (s := status(kc)).get("phase") == "Succeeded" and s, timeout=120, interval=1,
                      what="the promotion finished")
    assert done["stable"]["modelVersion"] == "2"
    reasons = [r for r, _ in events(kc)]
    assert "Finalising" in reasons and "Succeeded" in reasons, reasons

    set_interval(kc, "1h")
    assert registry.register(trained.files, "challenger") == "3"
    eventually(lambda: at_first_step("3"), timeout=300, interval=1, what="version 3 at its first step")
    kc.run("annotate", "inferenceservice", ISVC, "loom.dev/abort=true")
    failed = eventually(lambda: (s := status(kc)).get("phase") == "Failed" and s, timeout=60, interval=0.5,
                        what="the canary aborted")
    assert failed["stable"]["modelVersion"] == "2" and failed["canary"]["modelVersion"] == "3", failed
    assert failed["canaryWeight"] == 0 and failed["failedChecks"] == 0, failed
    assert registry.alias("champion") == "2"
    assert "loom.dev/abort" not in annotations(kc)
    rolled = [m for r, m in events(kc) if r == "RolledBack" and m.startswith("rolling back")]
    assert rolled and "aborted by annotation loom.dev/abort" in rolled[0], rolled
    assert "@champion stays on version 2" in rolled[0], rolled
    canary_ready = condition(kc.get("inferenceservice", ISVC), "CanaryReady")
    assert canary_ready is not None and canary_ready["reason"] == "RolledBack", canary_ready
    assert all(code == 200 for code, _ in clients.answers), Counter(c for c, _ in clients.answers)
    count = len(clients.answers)
    only(clients, "2", since=count)
