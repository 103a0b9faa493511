"""`Recommender`, the MLServer runtime of Loom's two-tower models. Model settings:

    implementation     serve.runtime.Recommender (components/ on PYTHONPATH)
    parameters.uri     the version's files (a directory or file:// URI; components/train/export.py)
    parameters.version the registry version, returned with every answer
    parameters.extra   {"k": default k (10),
                        "onlineFeatures": {"connection": "host:port", "project": ..., "view": ...,
                                           "joinKeys": {"userId": "INT64"}}}  (the FeatureSet's view;
                        as a JSON string too, as Seldon Core 2 passes a Model's parameters)

A V2 request carries `user` (INT64 or BYTES [n]: raw user ids) and optionally `k` (INT32/INT64 [1]).
Each user's online features are read from Redis, encoded with the version's encoders, and the ONNX user
tower turns id and features into a unit vector; the answer is the k items of largest inner product:
`items` [n, k] (INT64, or BYTES for string ids), `scores` FP32 [n, k], `fallback` BOOL [n]. A user the
model never saw and the online store does not know gets the items with the most training positives
instead (scores: their counts; fallback true). `parameters.modelVersion` names the version.

Serving is single-threaded per process (BLAS and onnxruntime use one thread): on a shared machine,
processes scale and threads contend (../shared/DESIGN.md: two BLAS threads, ~3x worse tails). The one
compute thread serves concurrent requests in batches (batching.py), beside the event loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import onnxruntime
from mlserver import MLModel
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse, Parameters, RequestInput, ResponseOutput
from threadpoolctl import threadpool_limits

from .artifacts import load
from .batching import Batcher
from .online import OnlineReader, OnlineSource
from .retrieval import recommend, top_k

DEFAULT_K = 10
MAX_K = 1000


def _flat(tensor: RequestInput) -> list[Any]:
    values = np.asarray(tensor.data.root, dtype=object).ravel().tolist()
    return [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]


def _session(path: Path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class Recommender(MLModel):
    reader: OnlineReader | None = None  # also when a failed load is unloaded

    async def load(self) -> bool:
        threadpool_limits(limits=1)  # in this (worker) process, for every later matrix product
        parameters = self.settings.parameters
        if parameters is None or not parameters.uri:
            raise ValueError(f"model {self.name}: parameters.uri must name the version's files")
        uri = urlparse(parameters.uri, scheme="file")
        if uri.scheme != "file":
            raise ValueError(f"model {self.name}: {parameters.uri} is not a local path (download it first)")
        self.files = load(Path(uri.path))
        extra = parameters.extra or {}
        self.default_k = int(extra.get("k", DEFAULT_K))
        self.tower = _session(self.files.user_tower)
        self.join_key = "user"
        features = self.files.features.names
        if "onlineFeatures" in extra:
            online = extra["onlineFeatures"]
            # Seldon Core 2 hands each Model parameter over as a string: structured values arrive as JSON.
            online = json.loads(online) if isinstance(online, str) else online
            source = OnlineSource.from_json({**online, "features": features})
            if len(source.join_keys) != 1:
                raise ValueError(f"model {self.name}: onlineFeatures.joinKeys must name one key (the user's)")
            self.join_key = next(iter(source.join_keys))
            self.reader = OnlineReader(source)
        elif features:
            raise ValueError(f"model {self.name}: the model reads user features {features}; "
                             "parameters.extra.onlineFeatures must say where they are online")
        known = next(iter(self.files.user_index), 0)
        self._user_id = int if isinstance(known, int) else str
        self._item_datatype = "INT64" if all(isinstance(i, int) for i in self.files.items) else "BYTES"
        self._items = np.asarray(self.files.items, dtype=np.int64 if self._item_datatype == "INT64" else object)
        self._batcher = Batcher(self.recommend)
        return True

    def _request(self, payload: InferenceRequest) -> tuple[list[Any], int]:
        tensors = {t.name: t for t in payload.inputs}
        if "user" not in tensors:
            raise InferenceError("the request needs an input `user` (the users' ids)")
        try:
            users = [self._user_id(u) for u in _flat(tensors["user"])]
        except (TypeError, ValueError) as error:
            raise InferenceError(f"input `user`: {error}") from error
        k = int(_flat(tensors["k"])[0]) if "k" in tensors else self.default_k
        if not 1 <= k <= MAX_K:
            raise InferenceError(f"input `k` must be between 1 and {MAX_K}, not {k}")
        return users, k

    def recommend(self, users: list[Any], k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Item rows [n, k], scores [n, k] and which users got the popularity fallback."""
        files = self.files
        index = np.array([files.user_index.get(u, 0) for u in users], np.int64)
        online: dict[str, list[Any]] = {}
        if self.reader is not None:
            online = self.reader.read([{self.join_key: u} for u in users])
        names = files.features.names
        absent = np.array([all(online[f][i] is None for f in names) for i in range(len(users))], bool)
        numeric, categorical = files.features.encode(online, len(users))
        feeds = {"user": index, "numeric": numeric, "categorical": categorical}
        (vectors,) = self.tower.run(["embedding"], {name: feeds[name] for name in files.inputs})
        rows, scores = recommend(vectors, files.item_embeddings, k)
        fallback = (index == 0) & absent
        if fallback.any():
            popular, counts = top_k(files.popularity[None, :], k)
            rows[fallback], scores[fallback] = popular[0], counts[0]
        return rows, scores, fallback

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        users, k = self._request(payload)
        rows, scores, fallback = await self._batcher(users, k)
        items = self._items[rows]
        shape = list(rows.shape)
        return InferenceResponse(
            model_name=self.name, model_version=self.version, id=payload.id,
            parameters=Parameters(modelVersion=self.version),
            outputs=[
                ResponseOutput(name="items", shape=shape, datatype=self._item_datatype, data=items.ravel().tolist()),
                ResponseOutput(name="scores", shape=shape, datatype="FP32",
                               data=scores.astype(np.float32).ravel().tolist()),
                ResponseOutput(name="fallback", shape=[len(users)], datatype="BOOL", data=fallback.tolist()),
            ],
        )

    async def unload(self) -> bool:
        if self.reader is not None:
            self.reader.close()
        return True
