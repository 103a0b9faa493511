"""Source files of an ingest: list a file:// or s3:// path or glob, and stream each file's record
batches (parquet, CSV, JSONL) converted to the table's Arrow schema.

Conversion is strict, so a bad file fails the run before anything is committed, with a message naming
the file and the column: a column the table lacks, a required column that is missing or has nulls,
or a value that does not convert (pyarrow's safe cast: no truncation, no overflow). Integers are never
read as timestamps or dates, because the unit (seconds? milliseconds?) would be a guess.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from pyarrow import fs

BATCH_ROWS = 128 * 1024
BLOCK_BYTES = 16 * 1024 * 1024
_GLOB_CHARS = set("*?[")


class SourceError(Exception):
    """A source file that cannot be loaded as it is; the message names the file (and the column).
    Running again cannot help, so the ingest exits with EXIT_INPUT_ERROR and is not retried."""


@dataclass(frozen=True)
class SourceFile:
    uri: str
    path: str  # as the filesystem names it
    size: int
    mtime_ns: int


def _filesystem(uri: str) -> tuple[fs.FileSystem, str, str]:
    """(filesystem, path as it names it, scheme): file:///a/b -> /a/b, s3://bucket/k -> bucket/k."""
    scheme, path = uri.split("://", 1)
    if scheme == "file":
        return fs.LocalFileSystem(), path, scheme
    filesystem, _ = fs.FileSystem.from_uri(f"{scheme}://{path.split('/', 1)[0]}")
    return filesystem, path, scheme


def list_files(uri: str) -> tuple[fs.FileSystem, list[SourceFile]]:
    """The files matching a path or a glob (`*`, `?`, `[...]` within path segments), sorted by URI."""
    filesystem, path, scheme = _filesystem(uri)
    parts = path.split("/")
    first_glob = next((i for i, p in enumerate(parts) if _GLOB_CHARS & set(p)), None)
    if first_glob is None:
        infos = [filesystem.get_file_info(path)]
    else:
        base = "/".join(parts[:first_glob]) or "/"
        pattern = parts[first_glob:]
        selector = fs.FileSelector(base, allow_not_found=True, recursive=len(pattern) > 1)
        infos = [
            info for info in filesystem.get_file_info(selector)
            if _match(info.path[len(base) :].lstrip("/").split("/"), pattern)
        ]
    files = [
        SourceFile(f"{scheme}://{info.path}", info.path, info.size, info.mtime_ns or 0)
        for info in infos
        if info.type == fs.FileType.File
    ]
    return filesystem, sorted(files, key=lambda f: f.uri)


def _match(parts: list[str], pattern: list[str]) -> bool:
    return len(parts) == len(pattern) and all(fnmatch.fnmatchcase(p, q) for p, q in zip(parts, pattern))


def _json_type(target: pa.DataType) -> pa.DataType | None:
    """What the JSON reader should produce for a column; values that JSON has no type for (dates,
    timestamps, decimals, ...) arrive as strings and are converted like CSV values."""
    if pa.types.is_integer(target):
        return pa.int64()
    if pa.types.is_floating(target):
        return pa.float64()
    if pa.types.is_boolean(target):
        return pa.bool_()
    if pa.types.is_nested(target):
        return None  # inferred, then cast
    return pa.string()


def _raw_batches(filesystem: fs.FileSystem, source: SourceFile, fmt: str, target: pa.Schema) -> Iterator[pa.RecordBatch]:
    if fmt == "parquet":
        with filesystem.open_input_file(source.path) as f:
            yield from pq.ParquetFile(f).iter_batches(batch_size=BATCH_ROWS)
    elif fmt == "csv":
        convert = pa_csv.ConvertOptions(
            column_types={f.name: pa.string() for f in target},  # converted by conform(), which names columns
            strings_can_be_null=True,
            null_values=[""],
        )
        with filesystem.open_input_stream(source.path) as f:
            yield from pa_csv.open_csv(f, read_options=pa_csv.ReadOptions(block_size=BLOCK_BYTES), convert_options=convert)
    elif fmt == "jsonl":
        explicit = pa.schema([pa.field(f.name, t) for f in target if (t := _json_type(f.type)) is not None])
        parse = pa_json.ParseOptions(explicit_schema=explicit, unexpected_field_behavior="infer")
        with filesystem.open_input_stream(source.path) as f:
            yield from pa_json.open_json(f, read_options=pa_json.ReadOptions(block_size=BLOCK_BYTES), parse_options=parse)
    else:
        raise ValueError(f"unknown format {fmt!r}")


def read_batches(filesystem: fs.FileSystem, source: SourceFile, fmt: str, target: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The file's rows as batches of the table's Arrow schema; SourceError on anything that does not fit."""
    try:
        for batch in _raw_batches(filesystem, source, fmt, target):
            yield conform(batch, target, source.uri)
    except (SourceError, OSError):
        raise  # OSError: the file system failed (a file that vanished, a store that timed out): retried
    except (pa.ArrowException, ValueError) as error:
        raise SourceError(f"{source.uri}: cannot read as {fmt}: {error}") from error


def conform(batch: pa.RecordBatch, target: pa.Schema, uri: str) -> pa.RecordBatch:
    extra = [name for name in batch.schema.names if target.get_field_index(name) < 0]
    if extra:
        raise SourceError(f"{uri}: column {extra[0]!r} is not in the table (table columns: {', '.join(target.names)})")
    columns = []
    for field in target:
        index = batch.schema.get_field_index(field.name)
        if index < 0:
            if not field.nullable:
                raise SourceError(f"{uri}: required column {field.name!r} is missing")
            columns.append(pa.nulls(batch.num_rows, field.type))
            continue
        column = batch.column(index)
        if column.type != field.type:
            column = _cast(column, field, uri)
        if not field.nullable and column.null_count:
            raise SourceError(f"{uri}: column {field.name!r} is required but has {column.null_count} null value(s)")
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=target)


def _cast(column: pa.Array, field: pa.Field, uri: str) -> pa.Array:
    if pa.types.is_integer(column.type) and pa.types.is_temporal(field.type):
        raise SourceError(
            f"{uri}: column {field.name!r} holds integers ({column.type}) but the table wants {field.type}; "
            "write timestamps/dates as such (or ISO-8601 strings), not as numbers of unknown unit"
        )
    try:
        return column.cast(field.type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
        raise SourceError(f"{uri}: column {field.name!r} ({column.type}) cannot be read as {field.type}: {error}") from error
