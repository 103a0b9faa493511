"""The model version's files, loadable where serving runs (numpy and onnxruntime; neither torch nor
MLflow 3):

    user_tower.onnx       inputs `user` (int64 [batch]: 1 + position in users.json, 0 = unknown),
                          `numeric` and `categorical` when the model has such user features (features.json
                          says how to encode online values); output `embedding` (float32 [batch, dim], unit length)
    item_embeddings.npy   float32 [items, dim], unit rows, in the order of items.json
    items.json, users.json  the raw ids (an item's row, a user's index - 1)
    popularity.npy        training positives per item (the fallback for a cold start)
    features.json         the user feature encoders
    model.json            format, tower shape, hyperparameters, what each file is
    model-settings.json   MLServer's: Loom's runtime over this folder (Seldon Core 2 loads a custom runtime
                          from the artifact's model settings); what is per deployment (the version's
                          name and version, online features) the deployment adds
    state_dict.pt, item_features.npy   the torch model, to score it again as a champion

A score is `embedding @ item_embeddings.T`; each user's history vector is inside the ONNX graph."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from encoding import UserFeatures
from hyperparameters import Hyperparameters
from model import ServingUserTower, TowerConfig, TwoTower
from prepare import Prepared

FORMAT = "loom.dev/two-tower/v1"
OPSET = 17
# No parameters.uri: MLServer sets it to the folder holding model-settings.json (and Seldon's agent, which
# adds the name, version and Model parameters, keeps it so).
MODEL_SETTINGS = {"implementation": "serve.runtime.Recommender"}


def _ids(values: np.ndarray) -> list[Any]:
    return [v.item() if hasattr(v, "item") else v for v in values]


@torch.no_grad()
def history_table(model: TwoTower, data: Prepared, hp: Hyperparameters) -> torch.Tensor:
    """Every user's history vector as evaluation computes it (row 0, the unknown user, is zero)."""
    users = np.arange(data.users)
    bags = data.bags(users, data.history_ends(users), hp.history_length, hp.history_decay)
    return model.pooled_history(bags.to(model.history.weight.device)).float().cpu()


def serving_inputs(config: TowerConfig, batch: int = 2) -> tuple[list[str], tuple[torch.Tensor | None, ...]]:
    names = ["user"]
    example: list[torch.Tensor | None] = [torch.arange(batch, dtype=torch.int64)]
    example.append(torch.zeros(batch, config.user_numeric_width) if config.user_numeric_width else None)
    if config.user_numeric_width:
        names.append("numeric")
    example.append(torch.zeros(batch, len(config.user_vocabulary_sizes), dtype=torch.int64)
                   if config.user_vocabulary_sizes else None)
    if config.user_vocabulary_sizes:
        names.append("categorical")
    return names, tuple(example)


class _OnnxUserTower(torch.nn.Module):
    """ServingUserTower with exactly the inputs the model has (ONNX has no optional positional ones)."""

    def __init__(self, tower: ServingUserTower, numeric: bool, categorical: bool) -> None:
        super().__init__()
        self.tower, self.numeric, self.categorical = tower, numeric, categorical

    def forward(self, user: torch.Tensor, *features: torch.Tensor) -> torch.Tensor:
        rest = list(features)
        numeric = rest.pop(0) if self.numeric else None
        categorical = rest.pop(0) if self.categorical else None
        return self.tower(user, numeric, categorical)


def export_onnx(model: TwoTower, history: torch.Tensor, path: Path) -> None:
    config = model.config
    tower = _OnnxUserTower(ServingUserTower(model, history), bool(config.user_numeric_width),
                           bool(config.user_vocabulary_sizes)).eval()
    names, example = serving_inputs(config)
    args = tuple(x for x in example if x is not None)
    torch.onnx.export(tower, args, str(path), input_names=names, output_names=["embedding"],
                      dynamic_axes={name: {0: "batch"} for name in [*names, "embedding"]},
                      opset_version=OPSET, dynamo=False)


def write(model: TwoTower, data: Prepared, hp: Hyperparameters, out: Path) -> Path:
    """Write the version's files into `out` (created) and return it."""
    out.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").eval()
    history = history_table(model, data, hp)
    export_onnx(model, history, out / "user_tower.onnx")
    np.save(out / "item_embeddings.npy", model.item_embeddings()[1:].float().numpy().astype(np.float32))
    np.save(out / "popularity.npy", np.asarray(data.positives.sum(axis=0), np.float32).ravel()[1:])
    np.save(out / "item_features.npy", data.item_features)
    (out / "items.json").write_text(json.dumps(_ids(data.item_ids)))
    (out / "users.json").write_text(json.dumps(_ids(data.user_ids)))
    (out / "features.json").write_text(json.dumps(data.user_features.to_json(), indent=1))
    torch.save(model.state_dict(), out / "state_dict.pt")
    (out / "model.json").write_text(json.dumps({
        "format": FORMAT,
        "tower": model.config.to_json(),
        "hyperparameters": asdict(hp),
        "itemFeatures": data.item_feature_names,
        "score": "user_tower.onnx(user, numeric?, categorical?) @ item_embeddings.npy.T",
    }, indent=1))
    (out / "model-settings.json").write_text(json.dumps(MODEL_SETTINGS, indent=1))
    return out


def load(directory: Path) -> tuple[TwoTower, Hyperparameters, UserFeatures, np.ndarray, np.ndarray]:
    """The torch model of a version's files, its hyperparameters and encoders, and its user and item ids."""
    meta = json.loads((directory / "model.json").read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{directory} holds format {meta.get('format')!r}, not {FORMAT}")
    tower = meta["tower"]
    config = TowerConfig(**{**tower, "user_vocabulary_sizes": tuple(tower["user_vocabulary_sizes"])})
    model = TwoTower(config, torch.from_numpy(np.load(directory / "item_features.npy")))
    model.load_state_dict(torch.load(directory / "state_dict.pt", map_location="cpu"))
    return (model.eval(), Hyperparameters(**meta["hyperparameters"]),
            UserFeatures.from_json(json.loads((directory / "features.json").read_text())),
            np.array(json.loads((directory / "users.json").read_text())),
            np.array(json.loads((directory / "items.json").read_text())))
