"""Shared building blocks of the four Loom APIs: base model, conditions, references, durations."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import Enum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonDict

from loom.api import cron

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


MAX_DURATION = timedelta(days=3650)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
# At most 12 digits before and 9 after the point: every part fits a float exactly enough, and the
# total is checked against MAX_DURATION before a timedelta is made, so nothing overflows.
_DURATION_PATTERN = r"^([0-9]{1,12}(\.[0-9]{1,9})?(ms|s|m|h|d))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")


def _cel_seconds(unit: str) -> str:
    """CEL for the seconds in one part `p` of a duration, e.g. '90s' or '250ms'."""
    return f"double(p.substring(0, p.size() - {len(unit)})) * {float(_UNITS[unit])!r}"


# The sum parse_duration computes, in CEL, so the API server refuses a duration longer than
# MAX_DURATION naming the field; units are tested longest first (ms before m and s).
_DURATION_SECONDS = "".join(f"p.endsWith('{unit}') ? {_cel_seconds(unit)} : " for unit in ("ms", "s", "m", "h"))
_DURATION_RANGE = cel(
    f"self.findAll('[0-9]+(\\\\.[0-9]+)?(ms|s|m|h|d)').map(p, {_DURATION_SECONDS}{_cel_seconds('d')}).sum()"
    f" <= {MAX_DURATION.total_seconds()!r}",
    f"must be at most {MAX_DURATION.days}d (10 years)",
)


class DurationError(ValueError):
    """A duration that is malformed or longer than MAX_DURATION; the message says which."""


def parse_duration(text: str) -> timedelta:
    """Turn a Duration string into a timedelta; a malformed or too long one raises DurationError
    (never OverflowError), whatever the caller validated before."""
    if not re.fullmatch(_DURATION_PATTERN, text):
        raise DurationError(f"invalid duration {text[:40]!r}: expected e.g. 90s, 15m, 1h30m or 7d")
    seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))
    if seconds > MAX_DURATION.total_seconds():
        raise DurationError(f"duration {text[:40]!r} is longer than {MAX_DURATION.days}d (10 years)")
    return timedelta(seconds=seconds)


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[
    str,
    StringConstraints(pattern=_DURATION_PATTERN, max_length=32),
    AfterValidator(_check_duration),
    Field(
        description=f"A duration such as 90s, 15m, 1h30m or 7d, at most {MAX_DURATION.days}d.",
        json_schema_extra={"x-kubernetes-validations": [_DURATION_RANGE]},
    ),
]

Cron = Annotated[
    str,
    StringConstraints(max_length=128),
    AfterValidator(cron.validate),
    Field(
        description="A cron schedule (five fields, or @hourly/@daily/...), in UTC.",
        json_schema_extra={"pattern": cron.PATTERN},
    ),
]

# Free-form maps (properties, hyperparameters): bounded so that no one map (at most ~140 KB) can fill
# the 256 KiB Kubernetes allows for all annotations together (Kopf keeps the last handled spec in one).
MAX_PROPERTIES = 32
PropertyKey = Annotated[str, StringConstraints(min_length=1, max_length=253)]
PropertyValue = Annotated[str, StringConstraints(max_length=4096)]
Properties = dict[PropertyKey, PropertyValue]

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
