"""The serve environment's Feast-free reader (components/serve/online.py, run by .venv-serve's
interpreter, where Feast is not installed) returns exactly what Feast's own get_online_features returns
for the same real materialized MovieLens features in a real Redis."""

from __future__ import annotations

import random

from tests.integration.serving.conftest import FEATURES, Online, run_serve_python

READ = """
import json, sys, time
from serve.online import OnlineReader, OnlineSource
spec = json.load(sys.stdin)
try:
    import feast
    sys.exit("feast is importable in the serve environment")
except ImportError:
    pass
reader = OnlineReader(OnlineSource.from_json(spec["source"]))
answers = [reader.read(rows) for rows in spec["requests"]]
start = time.perf_counter()
for _ in range(50):
    reader.read(spec["requests"][-1])
print(json.dumps({"answers": answers, "ms": (time.perf_counter() - start) / 50 * 1000}))
"""


def test_reader_returns_what_feast_returns(online: Online) -> None:
    users = online.users
    random.seed(7)
    requests = [[users[0]], [10_000_000], random.sample(users, 100) + [10_000_001, users[5]]]
    for features in (FEATURES, ["favoriteGenre", "meanRating"]):
        source = {**online.source, "features": features}
        got = run_serve_python(READ, {"source": source, "requests": [[{"userId": u} for u in r] for r in requests]})
        for ids, answer in zip(requests, got["answers"]):
            assert answer == online.feast_answers(ids, features)
    assert all(v is not None for v in got["answers"][2]["meanRating"][:100])
    assert got["answers"][1]["meanRating"] == [None]
    print(f"serve-env reader, 102 entities: {got['ms']:.2f} ms per read")
