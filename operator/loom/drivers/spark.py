"""Spark for the Iceberg work pyiceberg cannot do at scale (compaction, and ingests with --engine spark):
a SparkSession that opens one Loom catalog through Iceberg's own Spark catalog, and the
`rewrite_data_files` procedure on it. pyspark is imported when a session starts, SQLAlchemy (to read a
SQL catalog's URL) only for a SQL catalog.

Loom's SQL catalogs are pyiceberg SQL catalogs; pyiceberg 0.12 writes the table layout of Iceberg's JDBC
catalog (schema V1, with `iceberg_type`), so Spark opens the same database as a JDBC catalog under the
same catalog name and both see each other's commits. REST catalogs map to Iceberg's REST catalog."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Iceberg publishes one Spark runtime per Spark minor version; 1.12.0 is the newest and its newest
# runtime is for Spark 4.1 (Spark 4.2+ changed the connector View API the runtime implements).
ICEBERG_SPARK_RUNTIME = {"4.1": "org.apache.iceberg:iceberg-spark-runtime-4.1_2.13:1.12.0"}
ICEBERG_AWS_BUNDLE = "org.apache.iceberg:iceberg-aws-bundle:1.12.0"
JDBC_DRIVERS = {
    "sqlite": "org.xerial:sqlite-jdbc:3.53.4.0",
    "postgresql": "org.postgresql:postgresql:42.7.14",
}
DEFAULT_IVY_DIR = Path.home() / ".cache" / "loom" / "ivy"
# pyiceberg SQL-catalog settings that mean nothing to Iceberg's Java catalogs.
_PYICEBERG_ONLY = {"type", "uri", "warehouse", "init_catalog_tables", "echo", "pool_pre_ping"}


@dataclass(frozen=True)
class SparkCatalog:
    """Spark settings for one catalog: `spark.sql.catalog.<name>.*` entries and the Maven packages."""

    conf: dict[str, str]
    packages: list[str]


def _jdbc(uri: str) -> tuple[str, dict[str, str], str]:
    """A SQLAlchemy URL as a JDBC URL, the JDBC properties it carries (user, password, query
    parameters) and the driver it needs."""
    from sqlalchemy.engine import make_url

    url = make_url(uri)
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ValueError("an in-memory SQLite catalog cannot be shared with Spark")
        return f"jdbc:sqlite:{Path(url.database).resolve()}", {}, JDBC_DRIVERS["sqlite"]
    if backend == "postgresql":
        host = f"{url.host or 'localhost'}:{url.port or 5432}"
        props = {k: v if isinstance(v, str) else ",".join(v) for k, v in url.query.items()}
        if url.username:
            props["user"] = url.username
        if url.password:
            props["password"] = str(url.password)
        return f"jdbc:postgresql://{host}/{url.database or ''}", props, JDBC_DRIVERS["postgresql"]
    raise ValueError(f"SQL catalog backend {backend!r} has no JDBC mapping (sqlite and postgresql do)")


def spark_catalog(name: str, properties: Mapping[str, str]) -> SparkCatalog:
    """Map pyiceberg catalog properties to Iceberg's SparkCatalog settings. Properties both share
    (FileIO settings such as s3.*, REST credential/token) pass through unchanged."""
    if "." in name:
        # Spark reads `spark.sql.catalog.a.b` as option `b` of catalog `a`, and the JDBC catalog must
        # carry exactly pyiceberg's name, so there is no alias to fall back on.
        raise ValueError(f"catalog name {name!r} has a dot, which Spark cannot use as a catalog name")
    prefix = f"spark.sql.catalog.{name}"
    kind = properties.get("type", "")
    conf = {prefix: "org.apache.iceberg.spark.SparkCatalog"}
    packages: list[str] = []
    if kind == "sql":
        jdbc_url, jdbc_props, driver = _jdbc(properties["uri"])
        conf |= {f"{prefix}.type": "jdbc", f"{prefix}.uri": jdbc_url, f"{prefix}.jdbc.schema-version": "V1"}
        conf |= {f"{prefix}.jdbc.{k}": v for k, v in jdbc_props.items()}
        packages.append(driver)
        if properties.get("warehouse", "").startswith("s3://"):
            # pyiceberg picks its FileIO from the scheme; the JDBC catalog needs to be told.
            conf[f"{prefix}.io-impl"] = "org.apache.iceberg.aws.s3.S3FileIO"
            packages.append(ICEBERG_AWS_BUNDLE)
    elif kind == "rest":
        conf |= {f"{prefix}.type": "rest", f"{prefix}.uri": properties["uri"]}
    else:
        raise ValueError(f"Spark maintenance supports sql and rest catalogs, not {kind!r}")
    if "warehouse" in properties:
        conf[f"{prefix}.warehouse"] = properties["warehouse"]
    conf |= {f"{prefix}.{k}": v for k, v in properties.items() if k not in _PYICEBERG_ONLY}
    return SparkCatalog(conf=conf, packages=packages)


def iceberg_runtime(spark_version: str) -> str:
    """The iceberg-spark-runtime coordinates for this Spark version, or a clear error."""
    minor = ".".join(spark_version.split(".")[:2])
    if minor not in ICEBERG_SPARK_RUNTIME:
        supported = ", ".join(sorted(ICEBERG_SPARK_RUNTIME))
        raise RuntimeError(f"no Iceberg Spark runtime for Spark {spark_version}; install pyspark {supported}.*")
    return ICEBERG_SPARK_RUNTIME[minor]


def session_conf(
    catalog: SparkCatalog, spark_version: str, *, driver_memory: str, ivy_dir: Path
) -> dict[str, str]:
    """Everything the session is built with. Small on purpose: maintenance shares the machine."""
    packages = [iceberg_runtime(spark_version), *catalog.packages]
    return {
        "spark.driver.memory": driver_memory,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "2",
        "spark.jars.packages": ",".join(packages),
        # Resolved jars are cached here, so only the first run on a machine downloads them.
        "spark.jars.ivy": str(ivy_dir),
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        **catalog.conf,
    }


def spark_session(
    name: str,
    properties: Mapping[str, str],
    *,
    master: str = "local[2]",
    driver_memory: str = "512m",
    ivy_dir: Path = DEFAULT_IVY_DIR,
    app: str | None = None,
    conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """A SparkSession with the Loom catalog `name` registered under the same name; `conf` adds the
    caller's own settings."""
    import pyspark
    from pyspark.sql import SparkSession

    ivy_dir.mkdir(parents=True, exist_ok=True)
    catalog = spark_catalog(name, properties)
    settings = session_conf(catalog, pyspark.__version__, driver_memory=driver_memory, ivy_dir=ivy_dir)
    builder = SparkSession.builder.master(master).appName(app or f"loom-maintain-{name}")
    for key, value in {**settings, **(conf or {})}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _quote(part: str) -> str:
    return "`" + part.replace("`", "``") + "`"


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def rewrite_data_files(
    spark: SparkSession, catalog: str, identifier: str, target_file_size_bytes: int, min_input_files: int
) -> dict[str, int]:
    """Iceberg's bin-packing `rewrite_data_files` on `namespace.table`; returns the procedure's counts
    (rewritten_data_files_count, added_data_files_count, rewritten_bytes_count, ...)."""
    table = ".".join(_quote(part) for part in (catalog, *identifier.split(".")))
    options = {"target-file-size-bytes": str(target_file_size_bytes), "min-input-files": str(min_input_files)}
    option_args = ", ".join(f"{_sql_string(k)}, {_sql_string(v)}" for k, v in options.items())
    rows = spark.sql(
        f"CALL {_quote(catalog)}.system.rewrite_data_files("
        f"table => {_sql_string(table)}, options => map({option_args}))"
    ).collect()
    return {key: int(value) for key, value in rows[0].asDict().items()}
