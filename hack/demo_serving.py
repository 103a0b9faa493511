"""The demo's serving steps, as a client and a data scientist see them (hack/demo.sh runs them):

    demo_serving.py serve   INCOMING          the InferenceService serves @champion: recommendations for a
                                              few users with their movie titles, and the latency measured
    demo_serving.py rollout INCOMING EXPECT VERSION SECONDS
                                              clients keep calling while the canary of VERSION runs; each
                                              step as it happens, until it ends as EXPECT (Succeeded/Failed)
    demo_serving.py bad-version               register a broken copy of @champion under @challenger (its id
                                              map is shifted, so 30% of the known users fail: HTTP 500);
                                              prints the new version
    demo_serving.py curl    INCOMING          the curl line a client would type for one user's top 10, run,
                                              and its answer with the movie titles

Every claim is checked (the version answering, the aliases in MLflow, the Events); a failed check exits
non-zero. Settings come from the operator's LOOM_* variables, as the demo's operator has them."""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from loom.config import OperatorConfig

ISVC = "movie-recommender"
MODEL = "movielens-two-tower"
BROKEN_SHARE = 0.3


def kubectl(*args: str) -> Any:
    out = subprocess.run(["kubectl", *args, "-o", "json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def status() -> dict[str, Any]:
    return kubectl("get", "inferenceservice", ISVC).get("status") or {}


def client() -> Any:
    from mlflow.tracking import MlflowClient  # the checks' own, never the operator's

    uri = OperatorConfig().tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def alias(name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client().get_model_version_by_alias(MODEL, name).version)
    except MlflowException as error:
        if "not found" in str(error):  # no such alias (yet); MLflow says so with INVALID_PARAMETER_VALUE
            return None
        raise


REVISION_HEADER = "x-loom-revision"  # set by the router on every answer, an error's too


def recommend(url: str, users: list[int], k: int = 5) -> tuple[int, dict[str, Any], str | None]:
    body = {"inputs": [{"name": "user", "shape": [len(users)], "datatype": "INT64", "data": users},
                       {"name": "k", "shape": [1], "datatype": "INT64", "data": [k]}]}
    request = urllib.request.Request(f"{url}/v2/models/{ISVC}/infer", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read()), answer.headers.get(REVISION_HEADER)
    except urllib.error.HTTPError as error:
        return error.code, {}, error.headers.get(REVISION_HEADER)


def outputs(answer: dict[str, Any]) -> dict[str, list[Any]]:
    return {o["name"]: o["data"] for o in answer.get("outputs", [])}


def wait_serving(seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        s = status()
        ready = {c["type"]: c for c in s.get("conditions", [])}.get("Ready", {})
        if ready.get("status") == "True" and s.get("url"):
            return s
        if time.monotonic() > deadline:
            blockers = "; ".join(f"{c['type']}: {c.get('message')}" for c in s.get("conditions", [])
                                 if c.get("status") != "True")
            sys.exit(f"demo: the InferenceService is not serving after {seconds:.0f}s: {blockers}")
        time.sleep(2)


def known_users(incoming: Path) -> list[int]:
    """Users of the newest ratings batch: the model knows them, the online store has their features."""
    newest = sorted((incoming / "ratings").glob("*.parquet"))[-1]
    return sorted(set(pq.read_table(newest, columns=["userId"]).column("userId").to_pylist()))


def serve(incoming: Path) -> None:
    s = wait_serving(300)
    stable = s["stable"]
    print(f"  {ISVC}: {s['phase']}, version {stable['modelVersion']} at {s['url']}")
    champion = alias("champion")
    if champion != stable["modelVersion"]:
        sys.exit(f"demo: @champion is {champion} in MLflow, the InferenceService serves {stable['modelVersion']}")
    print(f"  MLflow: models:/{MODEL}@champion is version {champion}")
    movies = {r["movieId"]: r["title"] for r in pq.read_table(incoming / "movies.parquet").to_pylist()}
    users = known_users(incoming)[:3]
    code, answer, _ = recommend(s["url"], users)
    if code != 200:
        sys.exit(f"demo: the recommendation request failed with HTTP {code}")
    got = outputs(answer)
    for i, user in enumerate(users):
        titles = [movies.get(m, str(m)) for m in got["items"][i * 5:(i + 1) * 5]]
        print(f"  user {user}: " + "; ".join(titles))
    latencies = []
    for i in range(200):
        started = time.perf_counter()
        if recommend(s["url"], [users[i % len(users)]], k=100)[0] != 200:
            sys.exit("demo: a recommendation request failed")
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    print(f"  200 requests (top-100, one user each, one at a time): p50 {statistics.median(latencies):.1f} ms, "
          f"p99 {latencies[197]:.1f} ms, answered by version {answer['parameters']['modelVersion']}")


class Clients:
    """Two clients calling the InferenceService until stopped: every answer's status and the revision
    that gave it."""

    def __init__(self, url: str, users: list[int]) -> None:
        self.url, self.users, self.stop = url, users, threading.Event()
        self.answers = Counter[tuple[int, str | None]]()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(2)]
        for thread in self.threads:
            thread.start()

    def _run(self, n: int) -> None:
        i = n
        while not self.stop.is_set():
            code, _, revision = recommend(self.url, [self.users[i % len(self.users)]])
            self.answers[code, revision] += 1
            i += 7
            self.stop.wait(0.05)


def rollout(incoming: Path, expect: str, version: str, seconds: float) -> None:
    s = wait_serving(120)
    clients = Clients(s["url"], known_users(incoming))
    deadline, last = time.monotonic() + seconds, None
    try:
        while True:
            s = status()
            analysis = s.get("lastAnalysis") or {}
            checks = ", ".join(r["message"] for r in analysis.get("results", []))
            canary = (s.get("canary") or {}).get("modelVersion")
            key = (s.get("phase"), canary, s.get("canaryWeight"), s.get("iterations"), s.get("failedChecks"))
            if key != last:
                print(f"  {s.get('phase')}: canary version {canary} at {s.get('canaryWeight')}%, "
                      f"{s.get('failedChecks')} failed checks" + (f" ({checks})" if checks else ""), flush=True)
                last = key
            ended = {"Succeeded": s.get("phase") == "Succeeded" and s["stable"]["modelVersion"] == version,
                     "Failed": s.get("phase") == "Failed" and canary == version}
            if ended[expect]:
                break
            if any(ended.values()):
                sys.exit(f"demo: the rollout of version {version} ended {s.get('phase')}, expected {expect}")
            if time.monotonic() > deadline:
                sys.exit(f"demo: the rollout of version {version} did not end within {seconds:.0f}s: "
                         f"{json.dumps(s)[:1500]}")
            time.sleep(2)
    finally:
        clients.stop.set()
    answered = ", ".join(f"{n} x HTTP {code} from {revision}" for (code, revision), n in sorted(
        clients.answers.items(), key=lambda item: (item[0][0], str(item[0][1]))))
    print(f"  clients during the rollout: {answered}")
    events = kubectl("get", "events", "--field-selector", f"involvedObject.name={ISVC}")["items"]
    revision = f"{ISVC}-v{version} "  # this rollout's, not an earlier one's
    for event in sorted(events, key=lambda e: e.get("lastTimestamp") or ""):
        if event["reason"] in ("CanaryStarted", "CanaryWeight", "AnalysisFailed", "Promoting", "Succeeded",
                               "RolledBack") and revision in event["message"] \
                and not event["message"].startswith(("Ready=", "CanaryReady=")):
            print(f"  event {event['reason']}: {event['message']}")
    stable, champion = s["stable"]["modelVersion"], alias("champion")
    if champion != stable:
        sys.exit(f"demo: @champion is {champion} in MLflow, the InferenceService serves {stable} as stable")
    if any(code != 200 for code, revision in clients.answers if revision == s["stable"]["name"]):
        sys.exit(f"demo: the stable revision {s['stable']['name']} failed requests during the rollout")
    print(f"  MLflow: models:/{MODEL}@champion is version {champion}")


def bad_version() -> None:
    """A copy of @champion's files whose users.json is shifted by fake users, so the last 30% of the
    known users index past the user tower's embedding table; registered under @challenger."""
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    from mlflow.artifacts import download_artifacts

    registry = client()
    champion = registry.get_model_version_by_alias(MODEL, "champion")
    with tempfile.TemporaryDirectory() as scratch:
        files = Path(download_artifacts(artifact_uri=registry.get_model_version_download_uri(MODEL, champion.version),
                                        dst_path=str(Path(scratch) / "files"),
                                        tracking_uri=OperatorConfig().tracking_uri))
        users = json.loads((files / "users.json").read_text())
        fakes = [-(i + 1) for i in range(round(len(users) * BROKEN_SHARE))]
        (files / "users.json").write_text(json.dumps(fakes + users))
        run = registry.create_run(registry.get_run(champion.run_id).info.experiment_id,
                                  run_name="broken-id-map", tags={"loom.dev/demo": "bad-version"})
        registry.log_artifacts(run.info.run_id, str(files), "model")
        registry.set_terminated(run.info.run_id)
    version = registry.create_model_version(MODEL, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id,
                                            description="champion's files with a shifted user id map (demo)")
    registry.set_registered_model_alias(MODEL, "challenger", version.version)
    print(f"  registered version {version.version} (version {champion.version}'s files, its user id map shifted "
          f"by {len(fakes)} of {len(users)}) and moved @challenger to it", file=sys.stderr)
    print(version.version)


def curl(incoming: Path) -> None:
    s = wait_serving(120)
    user = known_users(incoming)[0]
    body = json.dumps({"inputs": [{"name": "user", "shape": [1], "datatype": "INT64", "data": [user]},
                                  {"name": "k", "shape": [1], "datatype": "INT64", "data": [10]}]})
    command = ["curl", "-sf", f"{s['url']}/v2/models/{ISVC}/infer", "-H", "Content-Type: application/json",
               "-d", body]
    print("  $ " + " ".join(shlex.quote(part) for part in command))
    answer = json.loads(subprocess.run(command, check=True, capture_output=True, text=True, timeout=30).stdout)
    got = outputs(answer)
    movies = {r["movieId"]: r["title"] for r in pq.read_table(incoming / "movies.parquet").to_pylist()}
    print(f"  user {user}'s top 10 from version {answer['parameters']['modelVersion']}:")
    for rank, (item, score) in enumerate(zip(got["items"], got["scores"], strict=True), 1):
        print(f"    {rank:2d}. {movies.get(item, item)}  ({score:.3f})")
    if answer["parameters"]["modelVersion"] != s["stable"]["modelVersion"]:
        sys.exit(f"demo: version {answer['parameters']['modelVersion']} answered, "
                 f"the stable one is {s['stable']['modelVersion']}")


def main() -> None:
    command = sys.argv[1]
    if command == "serve":
        serve(Path(sys.argv[2]))
    elif command == "rollout":
        rollout(Path(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]))
    elif command == "bad-version":
        bad_version()
    elif command == "curl":
        curl(Path(sys.argv[2]))
    else:
        sys.exit(f"usage: {sys.argv[0]} serve INCOMING | rollout INCOMING Succeeded|Failed VERSION SECONDS | "
                 "bad-version | curl INCOMING")


if __name__ == "__main__":
    main()
