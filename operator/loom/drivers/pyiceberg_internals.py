"""The pyiceberg internals Loom relies on, in one place: writing a table's data files without
committing them, and committing a transaction's staged changes exactly once with requirements of its
own. pyiceberg 0.12 has no public call for either.

No other Loom module imports a private pyiceberg name or edits pyiceberg objects behind its back;
tests/integration/datalake/test_pyiceberg_internals.py pins each behaviour used here against real
pyiceberg, so a pyiceberg upgrade that changes one fails there, by name."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Iterator

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.io.pyarrow import _dataframe_to_data_files
from pyiceberg.manifest import DataFile
from pyiceberg.table import CommitTableResponse, Table, TableProperties, Transaction
from pyiceberg.table.update import TableRequirement


def write_data_files(
    table: Table,
    rows: pa.Table,
    write_uuid: uuid.UUID,
    counter: itertools.count[int] | None = None,
    target_file_size_bytes: int | None = None,
) -> Iterator[DataFile]:
    """Write `rows` as parquet data files of the table's current schema and default partition spec
    (split by partition, bin-packed to the target size) and describe them as DataFiles, committing
    nothing. Files are written as the iterator is consumed, so a caller that records each one can
    delete exactly those after a failure.

    Relies on `pyiceberg.io.pyarrow._dataframe_to_data_files`, the writer behind pyiceberg's own
    append and overwrite: the ingest component commits its files together with its exactly-once
    record, and compaction adds them to an overwrite that deletes the files they replace; both need
    the files before (and apart from) any snapshot. File names are `00000-<counter>-<write_uuid>`, so
    one write_uuid with one shared counter keeps the files of several calls apart.

    `target_file_size_bytes` overrides the table's write.target-file-size-bytes for this write only:
    the writer reads the size from the metadata it is given, so it is handed a copy of the table's
    metadata with the property changed (the table itself is not touched)."""
    metadata = table.metadata
    if target_file_size_bytes is not None:
        target = {TableProperties.WRITE_TARGET_FILE_SIZE_BYTES: str(target_file_size_bytes)}
        metadata = metadata.model_copy(update={"properties": {**metadata.properties, **target}})
    yield from _dataframe_to_data_files(metadata, rows, table.io, write_uuid, counter)


def commit_once(
    catalog: Catalog, table: Table, transaction: Transaction, requirements: Iterable[TableRequirement] = ()
) -> CommitTableResponse:
    """Commit what `transaction` staged on `table` in one catalog commit, with `requirements` added
    to the transaction's own; raises CommitFailedException when any requirement no longer holds.

    Relies on `Transaction._requirements` and `Transaction._updates`: the staged updates, and the
    requirements the staged snapshot was built on (the main branch still at the snapshot it read).
    `Transaction.commit_transaction` would retry a refused commit by rebasing the staged snapshot on
    the new head; the ingest component must instead look at what the concurrent commit changed
    (its own exactly-once record) before it commits again, so it commits through
    `Catalog.commit_table` exactly once."""
    staged = (*transaction._requirements, *requirements)
    return catalog.commit_table(table, staged, transaction._updates)
