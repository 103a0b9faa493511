"""The DataLake reports which path an ingest's files took (registered as they are, or rewritten): in
the table's lastIngest and in the Ingested condition, whose flip becomes the Event."""

from __future__ import annotations

from loom.api.datalake import LastIngest
from loom.domain.workloads import Phase
from loom.services.datalake.decide import decide
from tests.unit.test_datalake_decide import NOW, ONCE_NAME, S_ONCE, healthy, run, table_seen

RECORD = LastIngest.model_validate(
    {"time": "2025-03-01T12:00:05Z", "files": 12, "zeroCopyFiles": 10, "rows": 1000, "snapshotId": 42}
)


def test_a_finished_ingest_says_which_path_its_files_took() -> None:
    observed = healthy(workloads={ONCE_NAME: (run(Phase.SUCCEEDED),)}, ingest_records={"movies": RECORD},
                       tables={"ratings": table_seen("ratings"), "movies": table_seen("movies", snapshot=42)})
    outcome = decide(S_ONCE, observed, NOW).outcome
    ingested = next(c for c in outcome.conditions if c.type == "Ingested")
    assert ingested.status is True
    assert ingested.message == ("ingest movies succeeded; its last commit registered 10 file(s) zero-copy, "
                                "rewrote 2 (1000 row(s), snapshot 42)")
    movies = next(t for t in outcome.fields["tables"] if t.name == "movies")
    assert movies.last_ingest.zero_copy_files == 10 and movies.last_ingest.files == 12


def test_a_record_from_before_zero_copy_counts_every_file_as_rewritten() -> None:
    old = LastIngest.model_validate({"time": "2025-03-01T12:00:05Z", "files": 2, "rows": 10, "snapshotId": 42})
    assert old.zero_copy_files == 0
