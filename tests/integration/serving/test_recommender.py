"""The runtime in the serve environment (ONNX user tower, online features read without Feast, numpy
top-k) recommends what the float torch model recommends for the same users and the same online
features, answered by Feast: known users, users with features the model never saw, and a user
nothing is known about (the popularity fallback)."""

from __future__ import annotations

import json

import numpy as np
import torch

from tests.integration.serving.conftest import (
    FEATURES,
    TRAINED_USERS,
    Online,
    Trained,
    frame,
    model_settings,
    outputs,
    request,
    run_serve_python,
)

PREDICT = """
import asyncio, json, sys, time
from mlserver.settings import ModelSettings
from mlserver.types import InferenceRequest
from threadpoolctl import threadpool_info
from serve.runtime import Recommender
spec = json.load(sys.stdin)

async def main():
    model = Recommender(ModelSettings(**{**spec["settings"], "implementation": Recommender}))
    await model.load()
    answer = await model.predict(InferenceRequest.model_validate(spec["request"]))
    timings = {}
    for k in (10, 100):
        one = InferenceRequest.model_validate({"inputs": [
            {"name": "user", "shape": [1], "datatype": "INT64", "data": [spec["user"]]},
            {"name": "k", "shape": [1], "datatype": "INT64", "data": [k]}]})
        seconds = []
        for _ in range(200):
            start = time.perf_counter()
            await model.predict(one)
            seconds.append(time.perf_counter() - start)
        seconds.sort()
        timings[k] = {"p50": seconds[100] * 1000, "p99": seconds[197] * 1000}
    blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    # Concurrent requests (computed in shared batches) answer what each does alone.
    mixed = [InferenceRequest.model_validate({"inputs": [
        {"name": "user", "shape": [len(users)], "datatype": "INT64", "data": users},
        {"name": "k", "shape": [1], "datatype": "INT64", "data": [k]}]}) for users, k in spec["mixed"]]
    alone = [(await model.predict(r)).model_dump()["outputs"] for r in mixed]
    together = [a.model_dump()["outputs"] for a in await asyncio.gather(*(model.predict(r) for r in mixed))]
    return {"answer": answer.model_dump(), "timings": timings, "blas": blas, "alone": alone, "together": together}

print(json.dumps(asyncio.run(main())))
"""
K = 20


@torch.no_grad()
def torch_scores(trained: Trained, online: Online, users: list[int]) -> np.ndarray:
    """Scores of every item by the float torch model, features as Feast answers them."""
    data, model, hp = trained.data, trained.model, trained.hp
    known = {u: i + 1 for i, u in enumerate(data.user_ids.tolist())}
    index = np.array([known.get(u, 0) for u in users], np.int64)
    bags = data.bags(index, data.history_ends(index), hp.history_length, hp.history_decay)
    numeric, categorical = data.user_features.encode(frame(online.feast_answers(users, FEATURES), FEATURES))
    vectors = model.user(torch.from_numpy(index), model.pooled_history(bags), torch.from_numpy(numeric),
                         torch.from_numpy(categorical))
    return (vectors @ model.item_embeddings()[1:].T).numpy()


def test_runtime_recommends_what_the_torch_model_does(trained: Trained, online: Online) -> None:
    known = [u for u in online.users if u <= TRAINED_USERS][:40]
    unseen = [u for u in online.users if u > TRAINED_USERS][:10]  # online features, no id embedding
    users = [*known, *unseen, 99_999_999]
    got = run_serve_python(PREDICT, {"settings": model_settings("movielens", trained, online, version="7"),
                                     "request": request(users, K), "user": known[0],
                                     "mixed": [[known[:3], 5], [unseen[:1], 50], [[99_999_999, known[3]], 1],
                                               [known[4:5], 20]]})
    assert got["blas"] == [1]  # numpy's BLAS, limited by load() to one thread
    for alone, together in zip(got["alone"], got["together"], strict=True):  # the same up to float rounding
        assert [o["name"] for o in together] == ["items", "scores", "fallback"]
        assert together[0] == alone[0] and together[2] == alone[2]
        np.testing.assert_allclose(together[1]["data"], alone[1]["data"], rtol=1e-5)
    answer = got["answer"]
    assert answer["model_version"] == "7" and answer["parameters"]["modelVersion"] == "7"
    out = outputs(answer)
    item_ids = np.array(trained.data.item_ids)
    rows = np.searchsorted(item_ids, out["items"])
    assert out["items"].shape == (len(users), K) and (item_ids[rows] == out["items"]).all()
    assert out["fallback"].tolist() == [False] * (len(users) - 1) + [True]

    scores = torch_scores(trained, online, users[:-1])
    best = -np.sort(-scores, axis=1)[:, :K]
    # Equal up to float noise (ONNX vs torch): the runtime's items are a top-k of the torch scores
    # and carry their scores; the lists are identical wherever no two scores are within that noise.
    np.testing.assert_allclose(out["scores"][:-1], best, atol=1e-5)
    np.testing.assert_allclose(np.take_along_axis(scores, rows[:-1], axis=1), best, atol=1e-5)
    torch_rows = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    assert (torch_rows == rows[:-1]).mean() > 0.98

    popularity = np.load(trained.files / "popularity.npy")
    assert rows[-1].tolist() == np.lexsort((np.arange(len(popularity)), -popularity))[:K].tolist()
    np.testing.assert_array_equal(out["scores"][-1], popularity[rows[-1]])
    for k, t in got["timings"].items():
        print(f"runtime predict, 1 user, top-{k} of {len(item_ids)} items: p50 {t['p50']:.2f} ms, "
              f"p99 {t['p99']:.2f} ms")


def test_online_features_given_as_a_json_string_as_seldon_passes_them(trained: Trained, online: Online) -> None:
    users = [u for u in online.users if u <= TRAINED_USERS][:5]
    settings = model_settings("movielens", trained, online)
    as_string = {**settings, "parameters": {**settings["parameters"], "extra": {
        **settings["parameters"]["extra"], "onlineFeatures": json.dumps(online.source)}}}
    answers = [run_serve_python(PREDICT, {"settings": s, "request": request(users, K), "user": users[0],
                                          "mixed": []})["answer"]
               for s in (settings, as_string)]
    assert outputs(answers[0])["items"].tolist() == outputs(answers[1])["items"].tolist()
    assert not outputs(answers[1])["fallback"].any()
