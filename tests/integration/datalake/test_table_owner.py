"""One table, one owner, through the real kube-apiserver, the operator and a real SQLite Iceberg
catalog: two DataLakes declare the same table with different column types. The first creates it and
records itself on it; the second leaves it untouched and says whose it is; the first stays Ready."""

from __future__ import annotations

from typing import Any

from loom.drivers.iceberg_owner import OWNER, OWNER_UID
from tests.integration.conftest import Kubectl, Operator, condition, eventually
from tests.integration.datalake.conftest import CatalogUnderTest

NS = "shared"


def lake(name: str, properties: dict[str, str], c_type: str) -> dict[str, Any]:
    return {
        "apiVersion": "loom.dev/v1alpha1",
        "kind": "DataLake",
        "metadata": {"name": name},
        "spec": {
            "catalog": {"type": "sql", "uri": properties["uri"], "warehouse": properties["warehouse"]},
            "namespace": NS,
            "tables": [{"name": "events", "columns": [{"name": "id", "type": "long", "required": True},
                                                      {"name": "c", "type": c_type}]}],
        },
    }


def reconciled(kc: Kubectl, name: str) -> dict[str, Any]:
    obj = kc.get("datalake", name)
    status = obj.get("status", {})
    assert status.get("observedGeneration") == obj["metadata"]["generation"], status
    assert condition(obj, "Ready") is not None, status
    return obj


def ready(kc: Kubectl, name: str) -> dict[str, Any]:
    obj = reconciled(kc, name)
    assert condition(obj, "Ready")["status"] == "True", obj["status"]
    return obj


def owned_elsewhere(kc: Kubectl, name: str) -> dict[str, Any]:
    obj = reconciled(kc, name)
    assert condition(obj, "TablesReady")["reason"] == "TableOwnedElsewhere", obj["status"]
    return obj


def test_a_second_lake_never_changes_the_first_ones_table(
    kc: Kubectl, operator: Operator, sql_catalog_sqlite: CatalogUnderTest
) -> None:
    catalog = sql_catalog_sqlite.catalog
    kc.apply(lake("first", sql_catalog_sqlite.properties, "int"))
    first = eventually(lambda: ready(kc, "first"), what="the first DataLake Ready")
    table = catalog.load_table((NS, "events"))
    assert table.properties[OWNER] == f"{kc.namespace}/first"
    assert table.properties[OWNER_UID] == first["metadata"]["uid"]
    schema_id = table.metadata.current_schema_id

    kc.apply(lake("second", sql_catalog_sqlite.properties, "long"))
    second = eventually(lambda: owned_elsewhere(kc, "second"), what="the second DataLake told whose table it is")

    table = catalog.load_table((NS, "events"))
    assert str(table.schema().find_field("c").field_type) == "int"
    assert table.metadata.current_schema_id == schema_id
    assert table.properties[OWNER_UID] == first["metadata"]["uid"]
    for type_ in ("TablesReady", "SchemaCompatible", "Ready"):
        found = condition(second, type_)
        assert found is not None and found["status"] == "False", second["status"]
        assert found["reason"] == "TableOwnedElsewhere"
        assert f"DataLake {kc.namespace}/first" in found["message"]
    assert second["status"]["tables"] == [{"name": "events", "ownedBy": f"{kc.namespace}/first"}]

    after = ready(kc, "first")
    assert {c["type"]: (c["status"], c["lastTransitionTime"]) for c in after["status"]["conditions"]} == \
        {c["type"]: (c["status"], c["lastTransitionTime"]) for c in first["status"]["conditions"]}


def test_when_the_owner_is_deleted_the_claimant_adopts_the_table(
    kc: Kubectl, operator: Operator, sql_catalog_sqlite: CatalogUnderTest
) -> None:
    catalog = sql_catalog_sqlite.catalog
    kc.apply(lake("first", sql_catalog_sqlite.properties, "int"))
    eventually(lambda: ready(kc, "first"), what="the first DataLake Ready")
    kc.apply(lake("second", sql_catalog_sqlite.properties, "long"))
    eventually(lambda: owned_elsewhere(kc, "second"), what="the second DataLake told whose table it is")

    kc.run("delete", "datalake", "first", "--timeout=60s")  # deletionPolicy Retain: the table stays
    # The owner's deletion wakes the claimant (a link), not the resync five minutes later.
    second = eventually(lambda: ready(kc, "second"), what="the second DataLake Ready with the table")
    table = catalog.load_table((NS, "events"))
    assert str(table.schema().find_field("c").field_type) == "long"
    assert (table.properties[OWNER], table.properties[OWNER_UID]) == (f"{kc.namespace}/second",
                                                                      second["metadata"]["uid"])
    assert second["status"]["tables"][0].get("ownedBy") is None
