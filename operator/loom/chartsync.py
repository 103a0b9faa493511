"""Keep the Helm chart's copies of `crds/` and `gpu-profiles/` identical to the sources.

Helm reads only files inside the chart directory, so `charts/loom/crds/` (installed by Helm before
the templates) and `charts/loom/gpu-profiles/` (rendered into a ConfigMap) must be copies. The
top-level directories stay the single source of truth; `loom manifests` calls `sync_chart`.
"""

from __future__ import annotations

from pathlib import Path

CHART = Path("charts") / "loom"
SYNCED = ("crds", "gpu-profiles")


def chart_copies(repo_root: Path) -> dict[Path, Path]:
    """Each chart copy and the source file it must equal (sources are the top-level `*.yaml`)."""
    pairs = {}
    for name in SYNCED:
        for source in sorted((repo_root / name).glob("*.yaml")):
            pairs[repo_root / CHART / name / source.name] = source
    return pairs


def stale_chart_files(repo_root: Path) -> list[Path]:
    """Chart copies that differ from their source, are missing, or have no source any more."""
    pairs = chart_copies(repo_root)
    stale = [copy for copy, source in pairs.items() if not copy.is_file() or copy.read_bytes() != source.read_bytes()]
    for name in SYNCED:
        stale += [path for path in sorted((repo_root / CHART / name).glob("*.yaml")) if path not in pairs]
    return stale


def sync_chart(repo_root: Path) -> list[Path]:
    """Make the chart copies equal to the sources; returns the files written or removed (empty when in sync)."""
    pairs = chart_copies(repo_root)
    changed = []
    for path in stale_chart_files(repo_root):
        if path in pairs:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pairs[path].read_bytes())
        else:
            path.unlink()
        changed.append(path)
    return changed
