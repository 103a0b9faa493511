"""train.json, the file the operator writes for a training run: the run's identity, where to track it,
which data (every table pinned to a snapshot) and what to train. Unknown fields are refused, so a
typo in the operator's builder fails the run at once with the field's name instead of being ignored."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class Run(Contract):
    name: str = Field(min_length=1)
    training_job: str = Field(min_length=1, description="<namespace>/<name> of the TrainingJob")
    uid: str = ""
    seed: int = 0
    image: str | None = None


class Tracking(Contract):
    uri: str = Field(min_length=1)
    experiment: str = Field(min_length=1)
    artifact_location: str | None = None


class Features(Contract):
    registry: str = Field(min_length=1, description="Feast SQL registry URI")
    project: str = Field(min_length=1)
    view: str = Field(min_length=1)
    snapshot_id: int
    feature_view_version: str | None = None


class LakeTable(Contract):
    catalog_name: str = "default"
    catalog_properties: dict[str, str] = Field(default_factory=dict)
    secret_properties: list[str] = Field(default_factory=list, description="KEY=ENV pairs")
    table: str = Field(min_length=1, description="<namespace>.<table>")
    snapshot_id: int


class Labels(LakeTable):
    user_field: str = Field(min_length=1)
    item_field: str = Field(min_length=1)
    label_field: str = Field(min_length=1)
    timestamp_field: str = Field(min_length=1)


class Items(LakeTable):
    key_field: str = Field(min_length=1)


class Model(Contract):
    name: str = Field(min_length=1)
    entrypoint: str = "two_tower"
    hyperparameters: dict[str, str] = Field(default_factory=dict)


class Evaluation(Contract):
    metric: str = "recall@10"
    k: int = Field(default=10, ge=1, le=1000)
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1)
    positive_rating: float = 3.5
    champion_alias: str | None = "champion"


class TrainConfig(Contract):
    run: Run
    tracking: Tracking
    features: Features
    labels: Labels
    items: Items | None = None
    model: Model
    evaluation: Evaluation = Field(default_factory=Evaluation)


class InputError(Exception):
    """The run's input cannot be processed as it is (exit status 65: retrying would fail the same way)."""


def describe(error: ValidationError) -> str:
    """One line per problem, each naming the field by its JSON path."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in error.errors())


def load(path: Path) -> TrainConfig:
    try:
        text = path.read_text()
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from error
    try:
        return TrainConfig.model_validate_json(text)
    except ValidationError as error:
        raise InputError(f"{path}: {describe(error)}") from error
