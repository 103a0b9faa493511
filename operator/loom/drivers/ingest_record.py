"""How an ingest records, in its Iceberg table, which source files it has committed (read by the
ingest component to skip them, and by the operator to report `lastIngest`).

Two table properties per ingest, written in the same catalog commit as the data they describe:

    loom.ingest.<name>.files   every committed file URI with its size and mtime (zlib + base64 JSON)
    loom.ingest.<name>.last    the last commit: {"time", "files", "rows", "snapshotId"}

Table properties live in the table metadata itself, so they survive snapshot expiry and compaction
(which drop or rewrite the snapshots whose summaries name the files). Each snapshot an ingest makes
also carries `loom.ingest.name` and `loom.ingest.files` (that commit's files) in its summary, for
lineage while the snapshot exists.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Mapping

from pydantic import ValidationError

from loom.api.datalake import LastIngest

SUMMARY_NAME = "loom.ingest.name"
SUMMARY_FILES = "loom.ingest.files"
_ENCODING = "zlib+json:"

Stamp = tuple[int, int]  # (size in bytes, mtime in ns) of a source file when it was committed


def files_key(ingest: str) -> str:
    return f"loom.ingest.{ingest}.files"


def last_key(ingest: str) -> str:
    return f"loom.ingest.{ingest}.last"


def encode_files(files: Mapping[str, Stamp]) -> str:
    text = json.dumps({uri: list(stamp) for uri, stamp in sorted(files.items())}, separators=(",", ":"))
    return _ENCODING + base64.b64encode(zlib.compress(text.encode(), 9)).decode()


def committed_files(properties: Mapping[str, str], ingest: str) -> dict[str, Stamp]:
    """The files this ingest has committed to the table, by URI."""
    value = properties.get(files_key(ingest))
    if not value:
        return {}
    if not value.startswith(_ENCODING):
        raise ValueError(f"table property {files_key(ingest)} is not a Loom ingest record")
    data = json.loads(zlib.decompress(base64.b64decode(value[len(_ENCODING) :])))
    return {uri: (int(size), int(mtime)) for uri, (size, mtime) in data.items()}


def record(ingest: str, files: Mapping[str, Stamp], last: LastIngest) -> dict[str, str]:
    """The properties to set in the commit that makes `files` the ingest's committed set."""
    return {files_key(ingest): encode_files(files), last_key(ingest): last.model_dump_json(by_alias=True)}


def paths(last: LastIngest) -> str:
    """Which path the commit's files took, e.g. "registered 10 file(s) zero-copy, rewrote 2"."""
    return f"registered {last.zero_copy_files} file(s) zero-copy, rewrote {last.files - last.zero_copy_files}"


def last_ingest(properties: Mapping[str, str], ingest: str) -> LastIngest | None:
    value = properties.get(last_key(ingest))
    if not value:
        return None
    try:
        return LastIngest.model_validate_json(value)
    except ValidationError:
        return None
