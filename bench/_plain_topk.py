"""The baseline model of bench/recommend_e2e.py, an MLServer custom runtime (bench/ on PYTHONPATH):
a plain numpy top-k with no features, no Redis and no ONNX. A request's `user` ids look up fixed user
vectors (user_vectors.npy, one row per users.json entry), one matrix product with the same item
matrix Loom's runtime serves (item_embeddings.npy, items.json), argpartition for the k best, and a
sort of those k. Answers `items` INT64 [n, k] and `scores` FP32 [n, k], as Loom's runtime does."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from mlserver import MLModel
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from threadpoolctl import threadpool_limits

DEFAULT_K = 100


class PlainTopK(MLModel):
    async def load(self) -> bool:
        threadpool_limits(limits=1)  # as Loom's runtime: one BLAS thread per process
        assert self.settings.parameters is not None and self.settings.parameters.uri
        directory = Path(urlparse(self.settings.parameters.uri, scheme="file").path)
        self.items = np.asarray(json.loads((directory / "items.json").read_text()), np.int64)
        self.embeddings = np.ascontiguousarray(np.load(directory / "item_embeddings.npy"), np.float32)
        self.vectors = np.ascontiguousarray(np.load(directory / "user_vectors.npy"), np.float32)
        self.rows = {user: row for row, user in enumerate(json.loads((directory / "users.json").read_text()))}
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        tensors = {t.name: np.asarray(t.data.root).ravel() for t in payload.inputs}
        try:
            rows = [self.rows[int(user)] for user in tensors["user"]]
        except KeyError as error:
            raise InferenceError(f"unknown user {error}") from error
        k = int(tensors["k"][0]) if "k" in tensors else DEFAULT_K
        # items x users, then transposed: the same for one user, and OpenBLAS's faster way round for several
        # (users x items directly is ~2x slower from two users on, which adaptive batching makes).
        scores = np.ascontiguousarray((self.embeddings @ self.vectors[rows].T).T)
        m = scores.shape[1]
        best = np.argpartition(scores, m - k, axis=1)[:, m - k:]
        best_scores = np.take_along_axis(scores, best, axis=1)
        order = np.argsort(-best_scores, axis=1)
        best, best_scores = np.take_along_axis(best, order, axis=1), np.take_along_axis(best_scores, order, axis=1)
        shape = list(best.shape)
        return InferenceResponse(model_name=self.name, id=payload.id, outputs=[
            ResponseOutput(name="items", shape=shape, datatype="INT64", data=self.items[best].ravel().tolist()),
            ResponseOutput(name="scores", shape=shape, datatype="FP32", data=best_scores.ravel().tolist()),
        ])
