"""`kubectl loom`'s words: references in kubectl's forms, the flags kubectl users type where they
type them, and the patches each request makes."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from loom.api.kinds import DATALAKE, FEATURESET, INFERENCESERVICE, TRAININGJOB, Kind
from loom.kubectl.client import context_namespace
from loom.kubectl.main import parser
from loom.kubectl.requests import REQUESTS
from loom.kubectl.resources import BadReference, expect, parse


@pytest.mark.parametrize("text, kind, name", [
    ("isvc/movie-recommender", INFERENCESERVICE, "movie-recommender"),
    ("inferenceservice/movie-recommender", INFERENCESERVICE, "movie-recommender"),
    ("InferenceServices.loom.dev/movie-recommender", INFERENCESERVICE, "movie-recommender"),
    ("lis/x", INFERENCESERVICE, "x"),
    ("tj/movielens-two-tower", TRAININGJOB, "movielens-two-tower"),
    ("TrainingJob/t", TRAININGJOB, "t"),
    ("fs/user-features", FEATURESET, "user-features"),
    ("dl/movielens", DATALAKE, "movielens"),
    ("lake/movielens", DATALAKE, "movielens"),
])
def test_references_in_kubectls_forms(text: str, kind: Kind, name: str) -> None:
    assert parse(text) == (kind, name)


@pytest.mark.parametrize("text, message", [
    ("pod/x", "'pod' is no Loom kind; use one of datalake, datalakes, dl"),
    ("movie-recommender", "names no kind; write <kind>/<name>, e.g. isvc/movie-recommender"),
    ("isvc/", "names no object"),
])
def test_a_bad_reference_says_what_is_accepted(text: str, message: str) -> None:
    with pytest.raises(BadReference, match=message):
        parse(text)


def test_a_command_for_one_kind_takes_a_bare_name_or_that_kinds_reference_only() -> None:
    assert expect("movie-recommender", INFERENCESERVICE) == "movie-recommender"
    assert expect("isvc/movie-recommender", INFERENCESERVICE) == "movie-recommender"
    with pytest.raises(BadReference, match="'tj/x' is of kind TrainingJob; this command takes one of kind InferenceService"):
        expect("tj/x", INFERENCESERVICE)


@pytest.mark.parametrize("argv", [
    ["-n", "ml", "--kubeconfig", "/k", "status", "tj/t", "-o", "json"],
    ["status", "tj/t", "--namespace", "ml", "--kubeconfig=/k", "-ojson"],
    ["--kubeconfig", "/k", "status", "-n", "ml", "tj/t", "--output", "json"],
])
def test_kubectls_flags_go_before_or_after_the_command(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    assert (args.namespace, args.kubeconfig, args.ref, args.output, args.watch) == ("ml", "/k", "tj/t", "json", False)
    assert args.context is None


def test_all_namespaces_and_watch() -> None:
    args = parser().parse_args(["status", "-A", "-w", "--interval", "0.5"])
    assert args.all_namespaces and args.watch and args.interval == 0.5 and args.namespace is None


def test_the_requests_patch_what_the_operator_honours() -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    patches = {command: (r.kind, r.patch(now)) for command, r in REQUESTS.items()}
    assert patches == {
        "promote": (INFERENCESERVICE, {"metadata": {"annotations": {"loom.dev/promote": "true"}}}),
        "abort": (INFERENCESERVICE, {"metadata": {"annotations": {"loom.dev/abort": "true"}}}),
        "retrain": (TRAININGJOB, {"metadata": {"annotations": {"loom.dev/retrain": "2026-03-01T12:00:00.123456Z"}}}),
        "suspend": (TRAININGJOB, {"spec": {"suspend": True}}),
        "resume": (TRAININGJOB, {"spec": {"suspend": False}}),
    }


def test_the_namespace_comes_from_the_kubeconfigs_context_as_kubectl_merges_files(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_text(yaml.safe_dump({"current-context": "dev", "contexts": [{"name": "dev", "context": {}}]}))
    second.write_text(yaml.safe_dump({"contexts": [{"name": "dev", "context": {"namespace": "ignored"}},
                                                   {"name": "prod", "context": {"namespace": "ml-prod"}}]}))
    assert context_namespace([first, second], None) is None  # the first file naming the context wins
    assert context_namespace([first, second], "prod") == "ml-prod"
    assert context_namespace([tmp_path / "missing"], None) is None
