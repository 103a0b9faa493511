"""The decisions every finalizer shares: retry with a growing delay a bounded number of times, then
let go with a Warning naming what was left; removing an owner's workloads even when one of them
cannot be removed; and what a leftover's message may show (no passwords, no raw control bytes)."""

from __future__ import annotations

import logging
from typing import Any

import kopf
import pytest

from loom.config import OperatorConfig
from loom.domain.workloads import Workload
from loom.handlers import deletion as glue
from loom.services.deletion import Cleanup, Left, Verdict, describe, redact, remove_workloads, verdict
from tests.support.executors import FakeExecutor

LEFT = Cleanup(left=(Left("feature view user_features in the Feast registry sqlite:///r.db", "ConnectionError: refused"),))


@pytest.mark.parametrize(("cleanup", "attempt", "expected"), [
    (Cleanup(), 0, Verdict(None, None)),
    (Cleanup(removed=("workload a",)), 4, Verdict(None, None)),
    (LEFT, 0, Verdict(2.0, None)),
    (LEFT, 1, Verdict(4.0, None)),
    (LEFT, 3, Verdict(16.0, None)),
    (LEFT, 4, Verdict(None, "feature view user_features in the Feast registry sqlite:///r.db left: "
                            "ConnectionError: refused")),
])
def test_retries_with_backoff_then_lets_go_naming_what_was_left(cleanup: Cleanup, attempt: int,
                                                                 expected: Verdict) -> None:
    assert verdict(cleanup, attempt, attempts=5, first_delay=2.0) == expected


def test_the_backoff_is_capped() -> None:
    assert verdict(LEFT, 10, attempts=20, first_delay=1.0).retry_after == 16.0


def test_removes_every_workload_of_the_owner_and_reports_the_one_that_would_not_go() -> None:
    class Stuck(FakeExecutor):
        def delete(self, namespace: str, name: str) -> None:
            if name == "lake-ingest-b":
                raise RuntimeError("the API server is unreachable")
            super().delete(namespace, name)

    executor = Stuck()
    for name in ("lake-ingest-a", "lake-ingest-b", "lake-maintenance"):
        executor.submit(Workload(name, "ml", "ingest", labels={"loom.dev/datalake": "lake"}))
    executor.submit(Workload("other-ingest", "ml", "ingest", labels={"loom.dev/datalake": "other"}))
    cleanup = remove_workloads(executor, "ml", {"loom.dev/datalake": "lake"})
    assert cleanup.removed == ("workload lake-ingest-a", "workload lake-maintenance")
    assert cleanup.left == (Left("workload lake-ingest-b", "RuntimeError: the API server is unreachable"),)
    assert set(executor.workloads) == {("ml", "lake-ingest-b"), ("ml", "other-ingest")}


def test_workloads_that_cannot_be_listed_are_reported() -> None:
    class Blind(FakeExecutor):
        def names(self, namespace: str, labels: Any) -> set[str]:
            raise ConnectionError("connection refused")

    (left,) = remove_workloads(Blind(), "ml", {"loom.dev/featureset": "fs"}).left
    assert left == Left("workloads labelled loom.dev/featureset=fs", "ConnectionError: connection refused")


@pytest.mark.parametrize(("text", "expected"), [
    ("postgresql://loom:s3cret@db:5432/feast", "postgresql://loom:***@db:5432/feast"),
    ("redis.ml:6379,password=s3cret,ssl=true", "redis.ml:6379,password=***,ssl=true"),
    ("postgresql://db\x00\x07:5432/feast", "postgresql://db\\x00\\x07:5432/feast"),
    ("sqlite:///state/registry.db", "sqlite:///state/registry.db"),
])
def test_redacts_passwords_and_escapes_unprintable_bytes(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_describes_an_error_without_its_secrets_and_bounded() -> None:
    assert describe(ValueError("token abc123 refused"), ("abc123",)) == "ValueError: token *** refused"
    assert len(describe(ValueError("x" * 1000))) == 240


def test_the_glue_retries_then_posts_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    posted: list[dict[str, Any]] = []
    monkeypatch.setattr(kopf, "event", lambda body, **kwargs: posted.append(kwargs))
    config = OperatorConfig(deletion_attempts=3, dependency_retry_seconds=1.5)
    logger: Any = logging.getLogger(__name__)
    body: Any = {}
    with pytest.raises(kopf.TemporaryError) as retried:
        glue.finish(body, logger, config, LEFT, attempt=1)
    assert retried.value.delay == 3.0 and "attempt 2 of 3" in str(retried.value) and posted == []
    glue.finish(body, logger, config, LEFT, attempt=2)
    assert posted == [{"type": "Warning", "reason": "CleanupIncomplete", "message":
                       "deleted after 3 attempt(s) with leftovers: " + LEFT.message}]
    glue.finish(body, logger, config, Cleanup(removed=("workload a",)), attempt=0)
    assert len(posted) == 1
