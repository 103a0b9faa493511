"""The runtime learns where the online features are from its model settings: the connection itself,
or the variable that holds it when it comes from a Secret (named, never copied, by the operator)."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "components"))
from serve.online import OnlineSource  # noqa: E402

WHERE = {"project": "loom_ml", "view": "user_features", "joinKeys": {"userId": "INT64"}}


def test_the_connection_is_given_or_read_from_the_variable_named(monkeypatch: pytest.MonkeyPatch) -> None:
    assert OnlineSource.from_json({"connection": "redis:6379", **WHERE}).connection == "redis:6379"
    monkeypatch.setenv("LOOM_FEAST_ONLINE_CONNECTION", "redis:6380,password=s3cret")
    source = OnlineSource.from_json({"connectionEnv": "LOOM_FEAST_ONLINE_CONNECTION", **WHERE})
    assert source.connection == "redis:6380,password=s3cret" and source.join_keys == {"userId": "INT64"}


def test_an_unset_variable_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOM_FEAST_ONLINE_CONNECTION", raising=False)
    with pytest.raises(ValueError, match="connectionEnv: the variable LOOM_FEAST_ONLINE_CONNECTION is not set"):
        OnlineSource.from_json({"connectionEnv": "LOOM_FEAST_ONLINE_CONNECTION", **WHERE})
