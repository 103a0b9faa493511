"""A local model server gets the online connection a Secret holds the way a pod would: as a variable
the executor fills from the Secret, named in its model settings, never written into them."""

from __future__ import annotations

import json
from pathlib import Path

from loom.api.inferenceservice import Revision
from loom.builders.local_serving import SETTINGS_FILE, revision_workload
from loom.domain.materialization import ONLINE_CONNECTION_ENV
from loom.domain.rollout import Split
from loom.domain.serving import Serving
from loom.domain.workloads import SecretEnv

STABLE = Revision(name="recs-v1", model_name="m", model_version="1", model_uri="file:///artifacts/1")
SECRET = SecretEnv(ONLINE_CONNECTION_ENV, "redis-credentials", "connection")


def test_the_secret_held_connection_is_a_secret_variable_of_the_model_server() -> None:
    online = {"connectionEnv": ONLINE_CONNECTION_ENV, "project": "p", "view": "v", "joinKeys": {"userId": "INT64"}}
    serving = Serving(name="recs", namespace="ml", image="local", stable=STABLE, split=Split(STABLE.name),
                      extra={"k": 10, "onlineFeatures": online}, secret_env=(SECRET,))
    workload = revision_workload(serving, STABLE, Path("/models/recs-v1"))
    assert workload.secret_env == (SECRET,)
    settings = json.loads(workload.files[SETTINGS_FILE])
    assert settings["parameters"]["extra"]["onlineFeatures"] == online
