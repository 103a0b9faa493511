"""The watch cache: reads of watched objects cost no API call, a cold or forgotten entry is read from
the API server, and writes always go to it."""

from __future__ import annotations

from typing import Any

from loom.api.kinds import DATALAKE, FEATURESET
from loom.drivers.informer import Informer
from loom.services.watch_cache import CachedReads
from tests.support.kube import FakeKube


class CountingKube(FakeKube):
    reads: int = 0

    def get_loom(self, *args: Any) -> dict[str, Any] | None:
        self.reads += 1
        return super().get_loom(*args)


def body(name: str, snapshot: int) -> dict[str, Any]:
    return {"metadata": {"namespace": "ml", "name": name}, "status": {"sourceSnapshotId": snapshot}}


def test_a_watched_object_is_read_from_the_cache_and_follows_its_events() -> None:
    api, cache = CountingKube(), Informer()
    api.put(FEATURESET, body("users", 1))
    kube = CachedReads(api, cache)
    assert kube.get_loom(FEATURESET, "ml", "users") == body("users", 1) and api.reads == 1  # cold: the API
    cache.seen("featuresets", "ml", "users", body("users", 2))
    assert kube.get_loom(FEATURESET, "ml", "users") == body("users", 2) and api.reads == 1  # the watch's
    cache.seen("featuresets", "ml", "users", None)  # deleted: forgotten, asked again
    assert kube.get_loom(FEATURESET, "ml", "users") == body("users", 1) and api.reads == 2
    assert kube.get_loom(DATALAKE, "ml", "users") is None  # another kind of the same name is not mixed up


def test_writes_and_secrets_go_to_the_api_server() -> None:
    api, cache = CountingKube(), Informer()
    api.put(FEATURESET, body("users", 1))
    api.put_secret("ml", "creds", {"token": "t"})
    kube = CachedReads(api, cache)
    kube.patch_status(FEATURESET, "ml", "users", {"phase": "x"})
    assert api.statuses == [("featuresets", "ml", "users", {"phase": "x"})]
    assert kube.get_secret("ml", "creds") == {"token": "t"}
