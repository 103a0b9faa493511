"""The DataLake's act step: actions carried out against a real SQLite Iceberg catalog in a temp dir, the
fake executor and the fake Kubernetes API; what each leaves on the outcome, and how a failure of the
catalog or of the executor becomes a False condition and a retry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pyiceberg.catalog import Catalog as IcebergCatalog
from pyiceberg.io import OutputFile
from pyiceberg.serializers import ToOutputFile
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.types import StringType

from loom.api.datalake import DataLakeSpec, TableStatus
from loom.config import OperatorConfig
from loom.domain.errors import SecretNotFoundError
from loom.domain.outcome import Decision, Event, Observed, Outcome
from loom.domain.table_changes import AddColumn, TableChanges
from loom.domain.workloads import OwnerRef, Workload
from loom.drivers import iceberg_lake, iceberg_tables
from loom.drivers.iceberg_catalog import catalog_properties, open_catalog
from loom.drivers.iceberg_lake import Dropped
from loom.services.context import ReconcileContext
from loom.services.datalake.act import act, drop
from loom.services.datalake.actions import (
    Action,
    CreateNamespace,
    CreateTable,
    DeleteWorkload,
    DropNamespaceIfEmpty,
    DropTable,
    EvolveTable,
    SubmitWorkload,
)
from loom.services.datalake.schema_plan import plan_creation
from loom.services.datalake.session import Session, open_session
from tests.support.executors import FakeExecutor
from tests.support.kube import FakeKube
from tests.support.specs import sqlite_lake

NOW = datetime(2025, 3, 1, 12, 0, 30, tzinfo=timezone.utc)
OWNER = OwnerRef("loom.dev/v1alpha1", "DataLake", "movielens", "uid-1")
SECRET = "hunter2-never-shown"
CONDITIONS = (
    Observed("CatalogReady", True, "Connected", "namespace movielens in sql catalog"),
    Observed("TablesReady", True, "Reconciled", "2 table(s) in namespace movielens"),
    Observed("Ingested", None, "Ingesting", "ingest movies started"),
)


@pytest.fixture
def spec(tmp_path: Path) -> DataLakeSpec:
    return sqlite_lake(tmp_path)


@pytest.fixture
def ctx() -> ReconcileContext:
    kube = FakeKube()
    kube.put_secret("ml", "lake-credentials", {"s3.secret-access-key": SECRET})
    return ReconcileContext("ml", "movielens", "uid-1", 1, kube, OperatorConfig(dependency_retry_seconds=3),
                            FakeExecutor(), NOW, {}, "loom.dev/v1alpha1", "DataLake")


@pytest.fixture
def session(spec: DataLakeSpec, ctx: ReconcileContext) -> Iterator[Session]:
    with open_session(spec, ctx.kube, ctx.namespace) as opened:
        assert opened.failure is None
        yield opened


@pytest.fixture
def catalog(spec: DataLakeSpec) -> Iterator[IcebergCatalog]:
    """The same catalog as another writer sees it."""
    opened = open_catalog("default", catalog_properties(spec.catalog, {"s3.secret-access-key": SECRET}))
    yield opened
    opened.close()


def decision(spec: DataLakeSpec, *actions: Action) -> Decision[Action]:
    rows = [TableStatus(name=t.name) for t in spec.tables]
    return Decision(Outcome(CONDITIONS, {"tables": rows, "table_count": 2}), actions)


def create(spec: DataLakeSpec, name: str, recreated: bool = False) -> CreateTable:
    table = next(t for t in spec.tables if t.name == name)
    return CreateTable(table, plan_creation(table).changes, recreated)


def ingest(name: str = "movielens-ingest-movies-0123abcd") -> Workload:
    return Workload(name, "ml", "ingest", owner=OWNER, labels={"loom.dev/datalake": "movielens"})


def conditions(outcome: Outcome) -> dict[str, tuple[bool | None, str, str]]:
    return {c.type: (c.status, c.reason, c.message) for c in outcome.conditions}


def rows(outcome: Outcome) -> dict[str, TableStatus]:
    return {row.name: row for row in outcome.fields["tables"]}


def test_creates_namespace_and_tables_then_submits(
    spec: DataLakeSpec, ctx: ReconcileContext, session: Session, catalog: IcebergCatalog
) -> None:
    work = ingest()
    outcome = act(decision(spec, CreateNamespace("movielens"), create(spec, "ratings"), create(spec, "movies"),
                           SubmitWorkload(work, "Ingested", "movies")), ctx, session)
    assert sorted(t for _, t in catalog.list_tables("movielens")) == ["movies", "ratings"]
    assert isinstance(ctx.executor, FakeExecutor) and ctx.executor.submitted == [work]
    assert outcome.conditions == CONDITIONS and outcome.retry_after is None
    assert outcome.events == (Event("Normal", "NamespaceCreated", "created namespace movielens"),
                              Event("Normal", "TablesCreated", "created in movielens: ratings, movies"))
    assert rows(outcome)["movies"].schema_id == 0 and rows(outcome)["movies"].row_count == 0
    assert outcome.fields["table_count"] == 2


def test_a_recreated_table_is_a_warning(spec: DataLakeSpec, ctx: ReconcileContext, session: Session,
                                        catalog: IcebergCatalog) -> None:
    catalog.create_namespace("movielens")
    outcome = act(decision(spec, create(spec, "movies", recreated=True)), ctx, session)
    (event,) = outcome.events
    assert (event.type, event.reason) == ("Warning", "TableRecreated")
    assert "table movielens.movies was missing from the catalog" in event.message


ADD_TITLE = TableChanges(schema=(AddColumn(("title",), StringType()),))


def observe_movies(spec: DataLakeSpec, session: Session, catalog: IcebergCatalog) -> None:
    """The movies table as another writer created it, read by the session as observe reads it."""
    catalog.create_namespace("movielens")
    catalog.create_table(("movielens", "movies"), iceberg_tables.schema_for(spec.tables[1].columns))
    assert session.table("movies") is not None


def test_evolves_the_table_as_observed_in_one_commit(
    spec: DataLakeSpec, ctx: ReconcileContext, session: Session, catalog: IcebergCatalog
) -> None:
    observe_movies(spec, session, catalog)
    outcome = act(decision(spec, EvolveTable("movies", ADD_TITLE)), ctx, session)
    assert [f.name for f in catalog.load_table(("movielens", "movies")).schema().fields] == ["movieId", "title"]
    assert rows(outcome)["movies"].schema_id == 1
    assert [(e.reason, e.message) for e in outcome.events] == [
        ("TableEvolved", "table movielens.movies: add column title string")]


def test_a_table_changed_by_another_writer_since_observed_is_planned_again_not_evolved(
    spec: DataLakeSpec, ctx: ReconcileContext, session: Session, catalog: IcebergCatalog
) -> None:
    observe_movies(spec, session, catalog)
    with catalog.load_table(("movielens", "movies")).transaction() as other:
        other.set_properties({"written-by": "someone else"})
    outcome = act(decision(spec, EvolveTable("movies", ADD_TITLE)), ctx, session)
    assert [f.name for f in catalog.load_table(("movielens", "movies")).schema().fields] == ["movieId"]
    status, reason, message = conditions(outcome)["TablesReady"]
    assert status is False and "changed by another writer since it was observed" in message
    assert outcome.retry_after == 3 and outcome.events == ()


def test_one_table_changed_meanwhile_leaves_it_as_it_was_and_the_others_evolve(
    spec: DataLakeSpec, ctx: ReconcileContext, session: Session, catalog: IcebergCatalog
) -> None:
    observe_movies(spec, session, catalog)
    catalog.create_table(("movielens", "ratings"), iceberg_tables.schema_for(spec.tables[0].columns))
    assert session.table("ratings") is not None
    with catalog.load_table(("movielens", "movies")).transaction() as other:
        other.set_properties({"written-by": "someone else"})
    outcome = act(decision(spec, EvolveTable("movies", ADD_TITLE), EvolveTable("ratings", ADD_TITLE)), ctx, session)
    assert [f.name for f in catalog.load_table(("movielens", "movies")).schema().fields] == ["movieId"]
    assert [f.name for f in catalog.load_table(("movielens", "ratings")).schema().fields] == ["userId", "title"]
    status, reason, message = conditions(outcome)["TablesReady"]
    assert (status, reason) == (False, "TableError")
    assert message == "table movies: changed by another writer since it was observed; planning again against it"
    assert rows(outcome)["ratings"].schema_id == 1 and rows(outcome)["movies"].schema_id is None
    assert [e.message for e in outcome.events] == ["table movielens.ratings: add column title string"]


def test_a_failed_table_is_reported_redacted_and_its_ingest_waits(
    spec: DataLakeSpec, ctx: ReconcileContext, session: Session, catalog: IcebergCatalog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_metadata = ToOutputFile.table_metadata

    def failing(metadata: TableMetadata, output_file: OutputFile, overwrite: bool = False) -> None:
        if "/movies/" in output_file.location:
            raise OSError(f"sqlalchemy could not write with key {SECRET}")
        write_metadata(metadata, output_file, overwrite)

    monkeypatch.setattr(ToOutputFile, "table_metadata", staticmethod(failing))
    catalog.create_namespace("movielens")
    work = ingest()
    outcome = act(decision(spec, create(spec, "ratings"), create(spec, "movies"),
                           SubmitWorkload(work, "Ingested", "movies")), ctx, session)
    assert conditions(outcome)["TablesReady"] == (False, "TableError", "table movies: sqlalchemy could not write with key ***")
    assert conditions(outcome)["Ingested"] == (
        False, "IngestFailed", f"{work.name} not submitted: table movies could not be created")
    assert SECRET not in repr(outcome)
    assert outcome.retry_after == 3
    assert "table_count" not in outcome.fields, "unknown while a table failed"
    assert rows(outcome)["ratings"].schema_id == 0 and rows(outcome)["movies"] == TableStatus(name="movies")
    assert isinstance(ctx.executor, FakeExecutor) and ctx.executor.submitted == []
    assert [t for _, t in catalog.list_tables("movielens")] == ["ratings"], "the other table went on"
    assert [e.reason for e in outcome.events] == ["TablesCreated"]


def test_a_catalog_that_cannot_be_opened_fails_each_change_by_name(
    spec: DataLakeSpec, ctx: ReconcileContext, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(name: str, properties: dict[str, str]) -> IcebergCatalog:
        raise OSError(f"cannot connect with key {SECRET}")

    monkeypatch.setattr(iceberg_lake, "open_catalog", unreachable)
    outcome = act(decision(spec, CreateNamespace("movielens"), create(spec, "ratings"), create(spec, "movies")),
                  ctx, session)
    assert conditions(outcome)["CatalogReady"] == (
        False, "CatalogUnavailable", "namespace movielens: cannot connect with key ***")
    assert conditions(outcome)["TablesReady"] == (
        False, "TableError", "table ratings: cannot connect with key ***; table movies: cannot connect with key ***")
    assert outcome.events == () and outcome.retry_after == 3


def test_a_table_created_by_someone_else_meanwhile_is_looked_at_again(
    spec: DataLakeSpec, ctx: ReconcileContext, session: Session, catalog: IcebergCatalog
) -> None:
    catalog.create_namespace("movielens")
    catalog.create_table(("movielens", "movies"), iceberg_tables.schema_for(spec.tables[1].columns))
    outcome = act(decision(spec, create(spec, "movies")), ctx, session)
    status, reason, message = conditions(outcome)["TablesReady"]
    assert (status, reason) == (False, "TableError") and "created by another writer meanwhile" in message
    assert outcome.retry_after == 3 and outcome.events == ()


def test_a_workload_the_executor_refuses_is_reported_and_retried(
    spec: DataLakeSpec, ctx: ReconcileContext, session: Session
) -> None:
    assert isinstance(ctx.executor, FakeExecutor)
    ctx.executor.refuse = SecretNotFoundError("Secret ml/lake-credentials has no key 'password'")
    work = ingest()
    outcome = act(decision(spec, SubmitWorkload(work, "Ingested"),
                           SubmitWorkload(ingest("movielens-expire-0123abcd"), "Maintained")), ctx, session)
    assert conditions(outcome)["Ingested"] == (
        False, "IngestFailed", f"{work.name} cannot start: Secret ml/lake-credentials has no key 'password'")
    assert conditions(outcome)["Maintained"][:2] == (False, "MaintenanceFailed"), "a condition the decision lacked"
    assert outcome.retry_after == 3


def test_deletes_a_stale_workload(spec: DataLakeSpec, ctx: ReconcileContext, session: Session) -> None:
    assert isinstance(ctx.executor, FakeExecutor)
    ctx.executor.submit(ingest("movielens-ingest-old-0123abcd"))
    outcome = act(decision(spec, DeleteWorkload("ml", "movielens-ingest-old-0123abcd", "Ingested")), ctx, session)
    assert ctx.executor.deleted == [("ml", "movielens-ingest-old-0123abcd")]
    assert outcome.conditions == CONDITIONS and outcome.retry_after is None


def test_nothing_to_do_changes_nothing(spec: DataLakeSpec, ctx: ReconcileContext, session: Session) -> None:
    before = decision(spec)
    assert act(before, ctx, session) == before.outcome


def test_drop_purges_the_tables_then_the_empty_namespace(
    spec: DataLakeSpec, session: Session, catalog: IcebergCatalog
) -> None:
    catalog.create_namespace("movielens")
    catalog.create_table(("movielens", "ratings"), iceberg_tables.schema_for(spec.tables[0].columns))
    dropped = drop((DropTable("ratings"), DropTable("movies"), DropNamespaceIfEmpty("movielens")), session)
    assert dropped == Dropped(("ratings",))
    assert ("movielens",) not in catalog.list_namespaces()
