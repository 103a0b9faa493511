"""Read the GPU profiles a TrainingJob can name: `gpu-profiles/*.yaml` in the repo, or the chart's
ConfigMap mounted into the operator pod (the same files, one key each)."""

from __future__ import annotations

import threading
from pathlib import Path

import yaml
from pydantic import ValidationError

from loom.api.gpuprofile import GpuProfile


class GpuProfileError(ValueError):
    """A profile file is missing, unreadable or invalid; the message names the file and the field."""


def _location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(profile)"


def load_profile(path: Path) -> GpuProfile:
    """One profile file, validated; its `name` must match the file name so `kubectl` users can find it."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise GpuProfileError(f"{path}: cannot read profile: {exc}") from exc
    if not isinstance(data, dict):
        raise GpuProfileError(f"{path}: a profile must be a YAML mapping, not {type(data).__name__}")
    try:
        profile = GpuProfile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{_location(err['loc'])}: {err['msg']}" for err in exc.errors())
        raise GpuProfileError(f"{path}: {problems}") from exc
    if profile.name != path.stem:
        raise GpuProfileError(f"{path}: name {profile.name!r} must equal the file name {path.stem!r}")
    return profile


def load_profiles(directory: Path) -> dict[str, GpuProfile]:
    """Every `*.yaml` profile in `directory` by name; ConfigMap mounts (symlinks into ..data) work as is."""
    if not directory.is_dir():
        raise GpuProfileError(f"{directory}: GPU profile directory does not exist")
    return {path.stem: load_profile(path) for path in sorted(directory.glob("*.yaml"))}


_cache: dict[Path, tuple[tuple[tuple[str, float], ...], dict[str, GpuProfile]]] = {}
_lock = threading.Lock()


def cached_profiles(directory: Path) -> dict[str, GpuProfile]:
    """`load_profiles`, read again only when a file is added, removed or changed (every reconcile of a
    TrainingJob asks; a mounted ConfigMap changes by replacing its files)."""
    if not directory.is_dir():
        raise GpuProfileError(f"{directory}: GPU profile directory does not exist")
    stamp = tuple((p.name, p.stat().st_mtime) for p in sorted(directory.glob("*.yaml")))
    with _lock:
        cached = _cache.get(directory)
        if cached is None or cached[0] != stamp:
            cached = (stamp, load_profiles(directory))
            _cache[directory] = cached
        return cached[1]
