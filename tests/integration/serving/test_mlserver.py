"""A real MLServer 1.7.1 process from the serve environment serves the recommender runtime over the V2
REST protocol: ready, a recommendation with the model version, a clear error for a bad request, and
its Prometheus metrics."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, eventually
from tests.integration.conftest import free_port
from tests.integration.serving.conftest import (
    SERVE_PYTHON,
    TRAINED_USERS,
    Online,
    Trained,
    model_settings,
    outputs,
    request,
    serve_env,
)

NAME = "movielens"


def call(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            text = response.read().decode()
            return response.status, json.loads(text) if text.startswith(("{", "[")) else text
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read().decode() or "null")


@dataclass
class Server:
    base: str  # http://127.0.0.1:<http port>
    metrics: str  # its /metrics URL


@pytest.fixture
def server(tmp_path: Path, trained: Trained, online: Online) -> Iterator[Server]:
    """An MLServer serving the version, as deployed: the model in one inference worker process."""
    models = tmp_path / "models"
    (models / NAME).mkdir(parents=True)
    (models / NAME / "model-settings.json").write_text(json.dumps(model_settings(NAME, trained, online, "3")))
    http, grpc, metrics = free_port(), free_port(), free_port()
    (models / "settings.json").write_text(json.dumps({
        "http_port": http, "grpc_port": grpc, "metrics_port": metrics, "parallel_workers": 1,
        "host": "127.0.0.1", "debug": False}))
    log = (tmp_path / "mlserver.log").open("wb")
    proc = subprocess.Popen([str(SERVE_PYTHON.parent / "mlserver"), "start", str(models)], env=serve_env(),
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http}"

    def ready() -> bool:
        assert proc.poll() is None, (tmp_path / "mlserver.log").read_text()[-4000:]
        try:
            return call(f"{base}/v2/health/ready")[0] == 200
        except OSError:
            return False

    try:
        eventually(ready, timeout=120, interval=0.5, what="MLServer ready")
        yield Server(base, f"http://127.0.0.1:{metrics}/metrics")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_mlserver_serves_the_runtime(server: Server, online: Online) -> None:
    base = server.base
    assert call(f"{base}/v2/models/{NAME}/ready")[0] == 200
    user = next(u for u in online.users if u <= TRAINED_USERS)
    status, body = call(f"{base}/v2/models/{NAME}/infer", request([user, 77_777_777], 5))
    assert status == 200, body
    assert body["model_name"] == NAME and body["model_version"] == "3" and body["parameters"]["modelVersion"] == "3"
    out = outputs(body)
    assert out["items"].shape == (2, 5) and out["scores"].shape == (2, 5) and out["fallback"].tolist() == [False, True]
    assert (out["scores"][0][:-1] >= out["scores"][0][1:]).all()

    status, body = call(f"{base}/v2/models/{NAME}/infer", request([user]))
    assert status == 200 and outputs(body)["items"].shape == (1, 10)  # the settings' default k
    status, body = call(f"{base}/v2/models/{NAME}/infer", {"inputs": [
        {"name": "users", "shape": [1], "datatype": "INT64", "data": [user]}]})
    assert status == 400 and "`user`" in body["error"]
    status, body = call(f"{base}/v2/models/{NAME}/infer", request([user], 5000))
    assert status == 400 and "`k` must be between 1 and 1000" in body["error"]

    def counted() -> bool:  # MLServer counts a request after answering it (its labels vary: model or model_name)
        with urllib.request.urlopen(server.metrics, timeout=10) as response:
            lines = response.read().decode().splitlines()
        return any(line.startswith("model_infer_request_success_total{") and f'"{NAME}"' in line
                   and line.endswith(" 2.0") for line in lines)

    eventually(counted, timeout=10, what="MLServer's success counter")

