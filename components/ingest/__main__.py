"""Load source files into an Iceberg table, each file committed exactly once.

    python components/ingest --catalog-name NAME --table NS.TABLE --ingest NAME \\
        --format parquet|csv|jsonl --uri 'file:///data/ratings/*.parquet' [--mode append|overwrite] \\
        [--no-zero-copy] [--engine pyiceberg|spark] [--secret-property CATALOG_KEY=ENV_VAR ...]

The catalog properties come as a JSON object in the file named by --catalog-properties-file (a relative
path is one of the workload's files, in $LOOM_WORKLOAD_FILES) or in $LOOM_CATALOG_PROPERTIES, as for
components/maintain; each --secret-property adds one property whose value is in an environment
variable (a secretKeyRef in a cluster), so credentials never appear on a command line or in a manifest.
Progress goes to stderr; the result is one JSON line on stdout; a failure ends with one line naming the
file and column, exit status 1, and nothing committed.

Each file is committed exactly once, whichever path it takes (`load`): a parquet file that already
matches the table is registered as it is, without rewriting it (zero-copy, `register`; --no-zero-copy
turns it off); the others are rewritten by pyiceberg in this process or, with --engine spark, by Spark
(`spark_write`). The run's result and its last line say which path each file took.

The process starts fast: it imports what the run needs when it needs it (SQLAlchemy only for a SQL
catalog, Spark only for --engine spark), and run as a program it refuses pandas, which pyarrow would
otherwise load for nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from importlib.abc import MetaPathFinder

from loom.domain.workload_contract import EXIT_INPUT_ERROR
from loom.workload_args import add_catalog_arguments, workload_properties

CHUNK_BYTES = 256 * 1024 * 1024


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ingest", description=__doc__.split("\n\n")[0])
    add_catalog_arguments(p)
    p.add_argument("--table", required=True, help="NAMESPACE.TABLE")
    p.add_argument("--ingest", required=True, help="name of the ingest (keys its record in the table)")
    p.add_argument("--format", required=True, choices=("parquet", "csv", "jsonl"))
    p.add_argument("--uri", required=True, help="file:// or s3:// path or glob")
    p.add_argument("--mode", default="append", choices=("append", "overwrite"))
    p.add_argument("--no-zero-copy", dest="zero_copy", action="store_false",
                   help="rewrite every file, also parquet files that match the table as they are")
    p.add_argument("--engine", default="pyiceberg", choices=("pyiceberg", "spark"),
                   help="what rewrites the files that cannot be registered as they are")
    p.add_argument("--chunk-bytes", type=int, default=CHUNK_BYTES, help="Arrow bytes held in memory at once (pyiceberg)")
    p.add_argument("--spark-master", default="local[2]", help="Spark master (--engine spark)")
    p.add_argument("--spark-driver-memory", default="1g", help="Spark driver memory (--engine spark)")
    return p


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    properties = workload_properties(args.catalog_properties_file, args.secret_property)
    secrets = [properties[item.partition("=")[0]] for item in args.secret_property]

    def fail(message: str, code: int = 1) -> int:
        for value in secrets:
            message = message.replace(value, "***")
        log(f"ingest {args.ingest} failed: {message}")
        return code

    from load import ingest, rewrite_in_process
    from source_files import SourceError

    from loom.drivers.iceberg_catalog import open_catalog

    catalog = None
    try:
        catalog = open_catalog(args.catalog_name, properties)
        if args.engine == "spark":
            from spark_write import SparkRewriter

            with SparkRewriter(args.catalog_name, properties, args) as rewriter:
                result = ingest(catalog, args, rewriter)
        else:
            result = ingest(catalog, args, rewrite_in_process)
    except SourceError as error:
        return fail(f"{error}; nothing committed", EXIT_INPUT_ERROR)
    except Exception as error:  # the traceback for the log, then the one-line verdict last
        traceback.print_exc()
        return fail(f"{type(error).__name__}: {error}")
    finally:
        if catalog is not None:
            catalog.close()
    print(json.dumps(result), flush=True)
    return 0


class _NoPandas(MetaPathFinder):
    """Makes `import pandas` fail as if it were not installed: pyarrow then skips its pandas glue, which
    would cost the run a few hundred milliseconds of imports and tens of MiB for nothing."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


if __name__ == "__main__":
    sys.meta_path.insert(0, _NoPandas())
    sys.exit(main())
