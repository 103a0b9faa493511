"""Shared building blocks of the four Loom APIs: base model, conditions, references, durations."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonDict

GROUP = "loom.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


def cel(rule: str, message: str, *, field_path: str | None = None) -> JsonDict:
    """One CEL `x-kubernetes-validations` entry; the message must name the offending field."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def keyed(description: str, max_items: int, key: str = "name") -> dict[str, Any]:
    """Field settings for a list of objects keyed by one field, so server-side apply merges by key
    and the API server itself refuses duplicates."""
    return {
        "description": description,
        "max_length": max_items,
        "json_schema_extra": {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": [key]},
    }


def immutable(field: str) -> JsonDict:
    """A transition rule that refuses any change of the field once set."""
    return cel("self == oldSelf", f"{field} is immutable")


class LoomModel(BaseModel):
    """Base for every spec/status model: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
        frozen=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """Serialize as it appears in the Kubernetes object (camelCase, no unset optionals)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}

Duration = Annotated[
    str,
    StringConstraints(pattern=r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$", max_length=32),
    Field(description="A duration such as 90s, 15m, 1h30m or 7d."),
]


def parse_duration(text: str) -> timedelta:
    """Turn a Duration string (already validated by its pattern) into a timedelta."""
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text)))


Cron = Annotated[
    str,
    StringConstraints(
        pattern=r"^(@(yearly|annually|monthly|weekly|daily|hourly)|(\S+\s+){4}\S+)$", max_length=128
    ),
    Field(description="A cron schedule (five fields, or @hourly/@daily/...), in UTC."),
]

DNSLabel = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63),
]

Identifier = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64),
]


class DeletionPolicy(str, Enum):
    """What happens to external state (tables, registry entries) when the resource is deleted."""

    RETAIN = "Retain"
    DELETE = "Delete"


class LocalObjectRef(LoomModel):
    """A reference to another Loom resource in the same namespace."""

    name: DNSLabel = Field(description="Name of the referenced resource in this namespace.")


class SecretKeyRef(LoomModel):
    """A Secret in the resource's namespace whose keys are read by the operator, never copied."""

    name: DNSLabel = Field(description="Name of the Secret in the same namespace.")
    key: str | None = Field(
        default=None,
        max_length=253,
        description="A single key to read; when unset every key of the Secret is used.",
    )


class ConditionStatus(str, Enum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(LoomModel):
    """The standard Kubernetes condition (metav1.Condition), as KServe and Kubeflow write them."""

    type: str = Field(max_length=316, description="Type of condition in CamelCase, e.g. Ready.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        max_length=1024, description="Machine-readable CamelCase reason for the last transition."
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
    last_transition_time: datetime = Field(
        description="When the condition last flipped from one status to another."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was computed from."
    )


class StatusBase(LoomModel):
    """Fields every Loom status carries."""

    model_config = ConfigDict(extra="ignore")

    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the operator last reconciled."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        **keyed("Latest observations of the resource's state; Ready is the summary.", 32, key="type"),
    )
