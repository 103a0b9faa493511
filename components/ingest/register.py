"""Zero-copy: a parquet source file that already is what the table would store is registered as one
of its data files where it is, as pyiceberg's `add_files` does, instead of being read and rewritten.

A file qualifies when reading it through the table gives exactly the rows the rewrite would write:

- every column it has is a column of the table under the same name (and, if the file carries Iceberg
  field ids, under the same id), so the table's name mapping finds each one; the table's own mapping,
  when it has one, must map the name to that id too;
- pyiceberg accepts its schema for the table (`add_files`' check): each required table column present
  and required in the file, each type the table's type or one Iceberg promotes to it;
- the file lies in one partition, derived from its column statistics (an order-preserving transform
  whose values at the column's minimum and maximum agree), and the statistics of every partition
  source column are there (pyiceberg would put a file without them in the null partition);
- it has rows.

Anything else is rewritten, where the strict conversion names what does not fit. The check reads
only the footer of each file."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow.parquet as pq
from pyarrow import fs
from pyiceberg.io.pyarrow import parquet_file_to_data_file
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table
from source_files import SourceFile

FIELD_ID_KEY = b"PARQUET:field_id"
THREADS = 8  # footers are small reads; on object stores most of the time is waiting


@dataclass(frozen=True)
class Registration:
    """The files registered as they are, with their DataFiles, and the others with why they do not qualify."""

    registered: dict[str, DataFile]  # by source URI
    rewrite: dict[str, str]  # source URI -> reason


def _columns_match(table: Table, footer: pq.FileMetaData) -> str:
    """Why the file's columns do not map one to one onto the table's by name ("" when they do)."""
    columns = {field.name: field.field_id for field in table.schema().fields}
    mapping = table.metadata.name_mapping()
    mapped = {name: field.field_id for field in mapping or () for name in field.names}
    for field in footer.schema.to_arrow_schema():
        field_id = columns.get(field.name)
        if field_id is None:
            return f"column {field.name!r} is not a column of the table"
        embedded = (field.metadata or {}).get(FIELD_ID_KEY)
        if embedded is not None and int(embedded) != field_id:
            return f"column {field.name!r} carries field id {int(embedded)}, the table's is {field_id}"
        if mapping is not None and mapped.get(field.name) != field_id:
            return f"the table's name mapping does not map column {field.name!r} to field {field_id}"
    return ""


def _partition_known(table: Table, data_file: DataFile) -> str:
    """Why the file's partition is not known from its statistics ("" when it is)."""
    spec = table.metadata.spec()
    for i, field in enumerate(spec.fields):
        nulls = data_file.null_value_counts.get(field.source_id, -1)
        if data_file.partition[i] is None and nulls != data_file.record_count:
            return f"no statistics for partition source column {table.schema().find_column_name(field.source_id)!r}"
    return ""


def _check(table: Table, filesystem: fs.FileSystem, source: SourceFile) -> DataFile | str:
    try:
        with filesystem.open_input_file(source.path) as f:
            footer = pq.read_metadata(f)
    except OSError:
        raise  # the file system failed: the run fails and is retried
    except Exception as error:  # not parquet at all: the rewrite says so, naming the file
        return f"no parquet footer ({error})"
    if footer.num_rows == 0:
        return "no rows"
    if reason := _columns_match(table, footer):
        return reason
    try:
        data_file = parquet_file_to_data_file(table.io, table.metadata, source.uri)
    except OSError:
        raise
    except Exception as error:  # pyiceberg refuses the schema, or the file spans partitions
        return str(error).strip().splitlines()[0]
    return _partition_known(table, data_file) or data_file


def register(table: Table, filesystem: fs.FileSystem, files: list[SourceFile]) -> Registration:
    """Check each parquet file (footers read in parallel) against the table's current schema, name
    mapping and default partition spec."""
    with ThreadPoolExecutor(max_workers=max(1, min(THREADS, len(files)))) as pool:
        checked = list(pool.map(lambda f: _check(table, filesystem, f), files))
    registered = {f.uri: r for f, r in zip(files, checked) if isinstance(r, DataFile)}
    rewrite = {f.uri: r for f, r in zip(files, checked) if isinstance(r, str)}
    return Registration(registered, rewrite)
