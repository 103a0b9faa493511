"""The Helm chart carries exact copies of crds/ and gpu-profiles/, and sync_chart restores them."""

from __future__ import annotations

import shutil
from pathlib import Path

from loom.chartsync import CHART, SYNCED, stale_chart_files, sync_chart

ROOT = Path(__file__).resolve().parents[2]


def test_chart_copies_match_sources() -> None:
    stale = stale_chart_files(ROOT)
    assert not stale, f"chart copies drifted from crds/ or gpu-profiles/: {stale}; run `make manifests`"
    for name in SYNCED:
        sources = sorted(p.name for p in (ROOT / name).glob("*.yaml"))
        assert sources, f"{name}/ is empty"
        assert sorted(p.name for p in (ROOT / CHART / name).glob("*.yaml")) == sources


def _repo_copy(tmp_path: Path) -> Path:
    for name in SYNCED:
        shutil.copytree(ROOT / name, tmp_path / name)
        shutil.copytree(ROOT / CHART / name, tmp_path / CHART / name)
    return tmp_path


def test_sync_repairs_edited_missing_and_orphaned_copies(tmp_path: Path) -> None:
    repo = _repo_copy(tmp_path)
    edited = repo / CHART / "gpu-profiles" / "nvidia-t4.yaml"
    edited.write_text(edited.read_text().replace("Tesla-T4", "Tesla-V100"))
    missing = repo / CHART / "crds" / "loom.dev_datalakes.yaml"
    missing.unlink()
    orphan = repo / CHART / "gpu-profiles" / "retired.yaml"
    orphan.write_text("name: retired\n")
    assert set(stale_chart_files(repo)) == {edited, missing, orphan}

    assert set(sync_chart(repo)) == {edited, missing, orphan}

    assert edited.read_bytes() == (repo / "gpu-profiles" / "nvidia-t4.yaml").read_bytes()
    assert missing.read_bytes() == (repo / "crds" / "loom.dev_datalakes.yaml").read_bytes()
    assert not orphan.exists()
    assert stale_chart_files(repo) == []
    assert sync_chart(repo) == [], "a second sync must change nothing"


def test_sync_creates_the_chart_dirs_from_scratch(tmp_path: Path) -> None:
    for name in SYNCED:
        shutil.copytree(ROOT / name, tmp_path / name)
    written = sync_chart(tmp_path)
    assert len(written) == sum(len(list((ROOT / name).glob("*.yaml"))) for name in SYNCED)
    assert stale_chart_files(tmp_path) == []
