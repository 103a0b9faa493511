"""The router's table: what the operator may write, and a split by weight that is exact, not just likely."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "components" / "router"))
from routing_table import Mirror, Percent, Revision, SmoothWeighted, TableError, load_table, parse_table  # noqa: E402


def table(**extra: object) -> dict[str, object]:
    return {"revisions": [{"name": "v1", "upstream": "127.0.0.1:8101", "weight": 90},
                          {"name": "v2", "upstream": "localhost:8102", "weight": 10}], **extra}


def test_a_table_with_a_mirror_parses_to_revisions_and_mirror() -> None:
    parsed = parse_table(table(mirror={"revision": "v2", "percent": 20}))
    assert parsed.revisions == (Revision("v1", "127.0.0.1", 8101, 90), Revision("v2", "localhost", 8102, 10))
    assert parsed.mirror == Mirror("v2", 20)
    assert parse_table(table()).mirror is None
    assert parse_table(table(mirror=None)).mirror is None


@pytest.mark.parametrize(("document", "message"), [
    ([], "object with revisions"),
    ({"revisions": []}, "non-empty list"),
    (table(extra=1), "object with revisions"),
    ({"revisions": [{"name": "v1", "upstream": "127.0.0.1:8101"}]}, "exactly name, upstream and weight"),
    ({"revisions": [{"name": "", "upstream": "h:1", "weight": 1}]}, "non-empty string"),
    ({"revisions": [{"name": "v1", "upstream": "8101", "weight": 1}]}, "host:port"),
    ({"revisions": [{"name": "v1", "upstream": "h:70000", "weight": 1}]}, "host:port"),
    ({"revisions": [{"name": "v1", "upstream": "h:1", "weight": -1}]}, "weight must be an integer"),
    ({"revisions": [{"name": "v1", "upstream": "h:1", "weight": 0.5}]}, "weight must be an integer"),
    ({"revisions": [{"name": "v1", "upstream": "h:1", "weight": True}]}, "weight must be an integer"),
    ({"revisions": [{"name": "v1", "upstream": "h:1", "weight": 1}, {"name": "v1", "upstream": "h:2", "weight": 1}]},
     "unique"),
    (table(mirror={"revision": "v3", "percent": 10}), "not one of the revisions"),
    (table(mirror={"revision": "v2", "percent": 101}), "percent must be an integer from 0 to 100"),
    (table(mirror={"revision": "v2"}), "exactly revision and percent"),
])
def test_a_wrong_table_is_refused_with_the_reason(document: object, message: str) -> None:
    with pytest.raises(TableError, match=message):
        parse_table(document)


def test_a_file_that_is_not_json_is_a_table_error(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    path.write_text('{"revisions": [')
    with pytest.raises(TableError, match="cannot read"):
        load_table(path)
    with pytest.raises(TableError, match="cannot read"):
        load_table(tmp_path / "missing.json")
    path.write_text(json.dumps(table()))
    assert [r.name for r in load_table(path).revisions] == ["v1", "v2"]


@pytest.mark.parametrize("weights", [[90, 10], [50, 50], [1, 2, 3], [0, 7, 3], [99, 1], [5, 0, 0]])
def test_every_run_of_sum_weights_picks_each_revision_exactly_its_weight(weights: list[int]) -> None:
    chooser = SmoothWeighted(weights)
    total = sum(weights)
    for _ in range(5):
        picks = Counter(chooser.pick() for _ in range(total))
        assert picks == Counter({i: w for i, w in enumerate(weights) if w})


def test_picks_interleave_instead_of_coming_in_runs() -> None:
    chooser = SmoothWeighted([90, 10])
    picks = [chooser.pick() for _ in range(100)]
    canary_at = [i for i, pick in enumerate(picks) if pick == 1]
    assert len(canary_at) == 10
    assert all(9 <= b - a <= 11 for a, b in zip(canary_at, canary_at[1:]))


def test_no_weight_means_no_pick() -> None:
    assert SmoothWeighted([0, 0]).pick() == -1


@pytest.mark.parametrize("percent", [0, 1, 20, 33, 50, 100])
def test_percent_is_exact_over_every_hundred_calls(percent: int) -> None:
    share = Percent(percent)
    for _ in range(3):
        assert sum(share.take() for _ in range(100)) == percent
