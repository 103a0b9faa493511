"""DataLake: an Iceberg catalog namespace and the tables Loom keeps it in step with."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints

from loom.api.meta import (
    MAX_PROPERTIES,
    Cron,
    DeletionPolicy,
    DNSLabel,
    Duration,
    Identifier,
    LoomModel,
    Properties,
    SecretKeyRef,
    StatusBase,
    cel,
    immutable,
    keyed,
)

# Iceberg type names as pyiceberg spells them; nested types are parsed in full by the operator.
IcebergType = Annotated[
    str,
    StringConstraints(
        pattern=(
            r"^(boolean|int|long|float|double|date|time|timestamp|timestamptz|timestamp_ns"
            r"|timestamptz_ns|string|uuid|binary|fixed\[[1-9][0-9]{0,8}\]"
            r"|decimal\(\s*[1-9][0-9]?\s*,\s*[0-9][0-9]?\s*\)|(list|map|struct)<.+>)$"
        ),
        max_length=4096,
    ),
    Field(
        description=(
            "Iceberg type: boolean, int, long, float, double, decimal(P,S), date, time, timestamp, "
            "timestamptz, string, uuid, binary, fixed[N], list<T>, map<K,V>, struct<name:T,...>."
        )
    ),
]

Transform = Annotated[
    str,
    StringConstraints(
        pattern=r"^(identity|year|month|day|hour|void|bucket\[[1-9][0-9]{0,8}\]|truncate\[[1-9][0-9]{0,8}\])$",
        max_length=32,
    ),
    Field(description="Iceberg partition transform: identity, year, month, day, hour, bucket[N], truncate[W]."),
]


class CatalogType(str, Enum):
    SQL = "sql"
    REST = "rest"
    HIVE = "hive"
    GLUE = "glue"


class Catalog(LoomModel):
    """Where the Iceberg catalog lives; the keys pyiceberg's `load_catalog` takes."""

    name: str = Field(
        default="default",
        pattern=r"^[A-Za-z0-9_.-]+$",
        max_length=128,
        description=(
            "Catalog name, the first argument of pyiceberg's load_catalog. SQL catalogs store it in every "
            "row, so engines sharing the database (Spark, Trino) must use the same name."
        ),
    )
    type: CatalogType = Field(
        description="Catalog implementation.",
        json_schema_extra={"x-kubernetes-validations": [immutable("catalog.type")]},
    )
    uri: str | None = Field(
        default=None,
        max_length=2048,
        description="Catalog URI (SQLAlchemy URL for sql, http(s) for rest, thrift for hive).",
    )
    warehouse: str | None = Field(
        default=None, max_length=2048, description="Warehouse location, e.g. file:///data/wh or s3://bucket/wh."
    )
    properties: Properties = Field(
        default_factory=dict,
        max_length=MAX_PROPERTIES,
        description="Extra catalog properties passed to pyiceberg as they are.",
    )
    secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret whose keys are added to the catalog properties (credentials); never logged.",
    )


class Column(LoomModel):
    name: Identifier = Field(description="Column name.")
    type: IcebergType
    required: bool = Field(default=False, description="Whether the column refuses nulls.")
    doc: str | None = Field(default=None, max_length=1024, description="Column documentation.")
    renamed_from: Identifier | None = Field(
        default=None,
        description="Previous name of this column; renames it in place (needs schemaEvolution.allowRenames).",
    )


class PartitionField(LoomModel):
    column: Identifier = Field(description="Source column of the partition field.")
    transform: Transform = "identity"
    name: Identifier | None = Field(
        default=None, description="Partition field name; pyiceberg derives one when unset."
    )


class SortDirection(str, Enum):
    ASC = "asc"
    DESC = "desc"


class NullOrder(str, Enum):
    FIRST = "nulls-first"
    LAST = "nulls-last"


class SortField(LoomModel):
    column: Identifier = Field(description="Column to sort by.")
    transform: Transform = "identity"
    direction: SortDirection = Field(default=SortDirection.ASC, description="Sort direction.")
    null_order: NullOrder = Field(default=NullOrder.FIRST, description="Where nulls sort.")


class Table(LoomModel):
    """One Iceberg table: schema, partitioning, sort order and properties."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.partitionBy) || self.partitionBy.all(p, self.columns.exists(c, c.name == p.column))",
                    "partitionBy[].column must name a column of the table",
                    field_path=".partitionBy",
                ),
                cel(
                    "!has(self.sortBy) || self.sortBy.all(s, self.columns.exists(c, c.name == s.column))",
                    "sortBy[].column must name a column of the table",
                    field_path=".sortBy",
                ),
            ]
        }
    )

    name: Identifier = Field(description="Table name inside the namespace.")
    columns: list[Column] = Field(min_length=1, **keyed("Table schema, in column order.", 256))
    partition_by: list[PartitionField] = Field(
        default_factory=list, max_length=8, description="Partition spec, evolved with update_spec."
    )
    sort_by: list[SortField] = Field(default_factory=list, max_length=8, description="Sort order.")
    properties: Properties = Field(
        default_factory=dict,
        max_length=MAX_PROPERTIES,
        description="Iceberg table properties, e.g. write.target-file-size-bytes.",
    )


class SchemaEvolution(LoomModel):
    """Opt-ins for changes that lose the ability to read a column under its old name."""

    allow_drop_columns: bool = Field(
        default=False, description="Allow columns removed from the spec to be dropped from the table."
    )
    allow_renames: bool = Field(default=False, description="Allow columns with renamedFrom to be renamed.")


class SourceFormat(str, Enum):
    PARQUET = "parquet"
    CSV = "csv"
    JSONL = "jsonl"


class IngestMode(str, Enum):
    APPEND = "append"
    OVERWRITE = "overwrite"


class IngestEngine(str, Enum):
    PYICEBERG = "pyiceberg"
    SPARK = "spark"


class IngestSource(LoomModel):
    format: SourceFormat = Field(description="File format of the source files.")
    uri: str = Field(
        max_length=2048,
        pattern=r"^(file|s3)://.+$",
        description="File path or glob, file:// or s3://, e.g. file:///data/ratings/*.parquet.",
    )


class Ingest(LoomModel):
    """Files to load into a table, each committed exactly once."""

    name: DNSLabel = Field(description="Name of this ingest, unique within the DataLake (used in Job names).")
    table: Identifier = Field(description="Target table; must be one of spec.tables.")
    source: IngestSource = Field(description="Where the files are.")
    mode: IngestMode = Field(default=IngestMode.APPEND, description="append adds rows; overwrite replaces them.")
    schedule: Cron | None = Field(default=None, description="Cron schedule; when unset the ingest runs once.")
    zero_copy: bool = Field(
        default=True,
        description=(
            "Register parquet files that already match the table (column names and types, required columns "
            "required, one partition per file) as its data files where they are, without rewriting them. "
            "The table then reads those files: they must stay and never change, and a purge of the table "
            "(deletionPolicy: Delete) deletes them. false rewrites every file into the warehouse."
        ),
    )
    engine: IngestEngine = Field(
        default=IngestEngine.PYICEBERG,
        description="pyiceberg rewrites files in the ingest process; spark rewrites them with Spark, for inputs "
                    "one machine cannot handle. Either way each file is committed exactly once.",
    )


class ExpireSnapshots(LoomModel):
    older_than: Duration = Field(default="168h", description="Expire snapshots older than this.")
    retain_last: int = Field(default=5, ge=1, le=10000, description="Always keep at least this many snapshots.")
    schedule: Cron = Field(default="@daily", description="When to expire snapshots.")


class CompactionEngine(str, Enum):
    PYICEBERG = "pyiceberg"
    SPARK = "spark"


class Compaction(LoomModel):
    schedule: Cron = Field(default="@daily", description="When to compact small files.")
    target_file_size_bytes: int = Field(
        default=134217728, ge=1048576, description="Target size of rewritten data files."
    )
    engine: CompactionEngine = Field(
        default=CompactionEngine.SPARK, description="spark for large tables; pyiceberg for small ones."
    )


class Maintenance(LoomModel):
    expire_snapshots: ExpireSnapshots | None = Field(default=None, description="Snapshot expiry.")
    compaction: Compaction | None = Field(default=None, description="Small-file compaction.")


class DataLakeSpec(LoomModel):
    """Desired Iceberg namespace and tables."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.ingest) || self.ingest.all(i, self.tables.exists(t, t.name == i.table))",
                    "ingest[].table must name a table in spec.tables",
                    field_path=".ingest",
                )
            ]
        }
    )

    catalog: Catalog = Field(description="The Iceberg catalog to manage.")
    namespace: Identifier = Field(
        description="Iceberg namespace holding the tables.",
        json_schema_extra={"x-kubernetes-validations": [immutable("namespace")]},
    )
    tables: list[Table] = Field(min_length=1, **keyed("Tables Loom creates and evolves.", 100))
    schema_evolution: SchemaEvolution = Field(
        default_factory=SchemaEvolution, description="Opt-ins for destructive schema changes."
    )
    ingest: list[Ingest] = Field(default_factory=list, **keyed("Files to load into tables.", 64))
    maintenance: Maintenance = Field(default_factory=Maintenance, description="Table upkeep.")
    deletion_policy: DeletionPolicy = Field(
        default=DeletionPolicy.RETAIN,
        description="Retain keeps the tables when the DataLake is deleted; Delete drops them with purge.",
    )


class LastIngest(LoomModel):
    time: datetime = Field(description="When the last ingest committed.")
    files: int = Field(ge=0, description="Files committed by it.")
    zero_copy_files: int = Field(
        default=0, ge=0, description="Of those files, the ones registered as they are (zero-copy); the rest were rewritten."
    )
    rows: int = Field(ge=0, description="Rows committed by it.")
    snapshot_id: int = Field(description="Snapshot it produced.")


class TableStatus(LoomModel):
    name: str = Field(max_length=253, description="Table name.")
    current_snapshot_id: int | None = Field(default=None, description="Current Iceberg snapshot id.")
    schema_id: int | None = Field(default=None, description="Current schema id.")
    spec_id: int | None = Field(default=None, description="Current partition spec id.")
    row_count: int | None = Field(default=None, ge=0, description="Rows in the current snapshot.")
    data_files: int | None = Field(default=None, ge=0, description="Data files in the current snapshot.")
    total_bytes: int | None = Field(default=None, ge=0, description="Bytes of data files in the current snapshot.")
    last_ingest: LastIngest | None = Field(default=None, description="The last ingest commit.")
    owned_by: str | None = Field(
        default=None, max_length=317,
        description="The DataLake (namespace/name) that owns this table when it is another one; this "
                    "DataLake then leaves the table untouched.",
    )


class DataLakeStatus(StatusBase):
    """Observed state of the catalog and its tables."""

    table_count: int | None = Field(default=None, ge=0, description="Tables that exist in the catalog.")
    tables: list[TableStatus] = Field(default_factory=list, **keyed("Observed state per table.", 100))
