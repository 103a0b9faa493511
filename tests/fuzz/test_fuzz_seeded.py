"""A small seeded fuzz run in the test suite: the same classification as `make fuzz`, every failure
class at zero. It starts its own control plane and operator (tests.fuzz.runner)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.runner import Settings, run

PER_KIND = 15
SEED = 20261202


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_seeded_fuzz_run_has_no_failures(tmp_path: Path) -> None:
    report = run(Settings(per_kind=PER_KIND, seed=SEED, workdir=tmp_path, batch=PER_KIND, quiet=8.0))
    assert sum(report.table[kind]["cases"] for kind in report.table) == 4 * PER_KIND
    assert report.failures == {}, "\n" + report.render()
