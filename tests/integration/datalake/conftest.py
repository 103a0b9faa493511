"""Real Iceberg SQL catalogs for the DataLake tests: SQLite in a tmp dir, and PostgreSQL (Debian's
server, one instance per session as the `postgres` user on a free loopback port, a fresh database
per test). `iceberg_catalog` runs a test once on each."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from glob import glob
from pathlib import Path
from typing import NamedTuple

import psycopg2
import pytest
from pyiceberg.catalog import Catalog

from loom.drivers.iceberg_catalog import open_catalog
from tests.integration.conftest import free_port

CATALOG_NAME = "default"  # what a DataLake uses when spec.catalog.name is unset


class CatalogUnderTest(NamedTuple):
    """Unpacks as `(properties, catalog)`; `properties` are what `open_catalog` and workloads take."""

    properties: dict[str, str]
    catalog: Catalog


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def create_database(self) -> str:
        name = f"lake_{uuid.uuid4().hex[:12]}"
        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password, dbname="postgres")
        conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return name


def _pg_bin(tool: str) -> str:
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    if not found:
        pytest.fail("PostgreSQL server not installed; run hack/install-system-deps.sh")
    return found[-1]


def _as_postgres(*cmd: str) -> None:
    """PostgreSQL refuses to run as root; as root, Debian's `postgres` user runs it."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    proc = subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stdout}{proc.stderr}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL server with password authentication, stopped and removed at the end."""
    base = Path(tempfile.mkdtemp(prefix="loom-pg-"))  # /tmp, not pytest's 0700 tree the server cannot enter
    data = base / "data"
    password = secrets.token_urlsafe(16)
    (base / "pw").write_text(password)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(base / "pw", "postgres")
    port = free_port()
    _as_postgres(_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256",
                 f"--pwfile={base / 'pw'}", "--no-sync", "-E", "UTF8")
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    _as_postgres(_pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start")
    try:
        yield Postgres("127.0.0.1", port, "postgres", password)
    finally:
        _as_postgres(_pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def _open(properties: dict[str, str]) -> Iterator[CatalogUnderTest]:
    catalog = open_catalog(CATALOG_NAME, properties)
    try:
        yield CatalogUnderTest(properties, catalog)
    finally:
        catalog.close()


@pytest.fixture
def sql_catalog_sqlite(tmp_path: Path) -> Iterator[CatalogUnderTest]:
    """An Iceberg SQL catalog in a SQLite file with a file:// warehouse, both in this test's tmp dir."""
    yield from _open({
        "type": "sql",
        "uri": f"sqlite:///{tmp_path / 'catalog' / 'catalog.db'}",
        "warehouse": f"file://{tmp_path / 'warehouse'}",
    })


@pytest.fixture
def sql_catalog_postgres(postgres: Postgres, tmp_path: Path) -> Iterator[CatalogUnderTest]:
    """An Iceberg SQL catalog in a fresh PostgreSQL database with a file:// warehouse in tmp."""
    yield from _open({
        "type": "sql",
        "uri": postgres.url(postgres.create_database()),
        "warehouse": f"file://{tmp_path / 'warehouse'}",
    })


@pytest.fixture(params=["sqlite", "postgres"])
def iceberg_catalog(request: pytest.FixtureRequest) -> CatalogUnderTest:
    """The test runs once per catalog backend."""
    return request.getfixturevalue(f"sql_catalog_{request.param}")
