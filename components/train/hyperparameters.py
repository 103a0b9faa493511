"""The model's hyperparameters as the TrainingJob spells them (camelCase strings in
spec.model.hyperparameters), with defaults that train the full MovieLens sample in about a minute on
two CPU cores."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic.alias_generators import to_camel


@dataclass(frozen=True)
class Hyperparameters:
    embedding_dim: int = 64
    hidden: int = 256
    dropout: float = 0.0  # of the towers' MLP inputs
    epochs: int = 8
    batch_size: int = 1024
    learning_rate: float = 0.005
    weight_decay: float = 0.01
    temperature: float = 0.1
    # Weight of the logQ correction: 0 is plain in-batch softmax, 1 the unbiased one. A little over 1
    # ranks best on the sample's temporal holdout (recall@10, mean of two seeds: 0.089 at 1.25, 0.086
    # at 1.5, 0.083 at 2).
    logq: float = 1.25
    user_id_dropout: float = 0.1  # share of rows trained as the unknown user, so cold users get a vector
    history_length: int = 50  # newest positives pooled into the user's history vector
    history_decay: float = 0.9  # weight of a positive per newer one after it

    def to_params(self) -> dict[str, str]:
        return {to_camel(f.name): str(getattr(self, f.name)) for f in dataclasses.fields(self)}


MAY_BE_ZERO = frozenset({"logq", "userIdDropout", "weightDecay", "dropout"})


def parse(values: Mapping[str, str]) -> Hyperparameters:
    """Hyperparameters from their camelCase names; an unknown name or a bad value is a ValueError
    naming it."""
    fields = {to_camel(f.name): f for f in dataclasses.fields(Hyperparameters)}
    parsed: dict[str, object] = {}
    for key, raw in values.items():
        if key not in fields:
            raise ValueError(f"model.hyperparameters.{key}: unknown; known are {', '.join(sorted(fields))}")
        kind = int if fields[key].type in ("int", int) else float
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"model.hyperparameters.{key}: {raw!r} is not a{'n integer' if kind is int else ' number'}")
        if value < 0 or (value == 0 and key not in MAY_BE_ZERO):
            raise ValueError(f"model.hyperparameters.{key}: {raw!r} must be positive")
        parsed[fields[key].name] = value
    return Hyperparameters(**parsed)  # type: ignore[arg-type]
