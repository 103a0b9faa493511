"""The two towers. A user is their id embedding, a recency-weighted mean of the items they liked
before (a bag over a separate item-history embedding, so a user with few ratings still has a usable
vector, and what they liked lately counts most) and their FeatureSet features; an item is its id embedding and its features (genres, year). Both towers end
L2-normalized, so a score is a cosine and the temperature sets the softmax's sharpness."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TowerConfig:
    users: int  # rows of the user id table, index 0 = unknown user
    items: int  # rows of the item tables, index 0 = unknown item
    item_feature_width: int
    user_numeric_width: int
    user_vocabulary_sizes: tuple[int, ...]
    dim: int = 64
    hidden: int = 256
    dropout: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "user_vocabulary_sizes": list(self.user_vocabulary_sizes)}


@dataclass(frozen=True)
class Bags:
    """One history per row of a batch: concatenated item indices, where each row's start, and each
    item's weight (a row's weights sum to 1, or it has none)."""

    flat: torch.Tensor
    offsets: torch.Tensor
    weights: torch.Tensor

    def to(self, device: torch.device) -> Bags:
        return Bags(self.flat.to(device), self.offsets.to(device), self.weights.to(device))


class UserTower(nn.Module):
    def __init__(self, config: TowerConfig) -> None:
        super().__init__()
        d = config.dim
        self.ids = nn.Embedding(config.users, d)
        self.categorical = nn.ModuleList(nn.Embedding(size, d) for size in config.user_vocabulary_sizes)
        self.numeric = nn.Linear(config.user_numeric_width, d) if config.user_numeric_width else None
        inputs = d * (2 + len(config.user_vocabulary_sizes) + (1 if self.numeric is not None else 0))
        self.mlp = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(inputs, config.hidden), nn.GELU(),
                                 nn.Linear(config.hidden, d))
        nn.init.normal_(self.ids.weight, std=0.02)

    def forward(self, users: torch.Tensor, history: torch.Tensor, numeric: torch.Tensor,
                categorical: torch.Tensor) -> torch.Tensor:
        parts = [self.ids(users), history]
        parts += [table(categorical[:, i]) for i, table in enumerate(self.categorical)]
        if self.numeric is not None:
            parts.append(self.numeric(numeric))
        x = torch.cat(parts, dim=1)
        return F.normalize(history + self.mlp(x), dim=1)


class ItemTower(nn.Module):
    def __init__(self, config: TowerConfig, features: torch.Tensor) -> None:
        super().__init__()
        d = config.dim
        self.ids = nn.Embedding(config.items, d)
        self.register_buffer("features", features)
        inputs = d + features.shape[1]
        self.mlp = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(inputs, config.hidden), nn.GELU(),
                                 nn.Linear(config.hidden, d))
        nn.init.normal_(self.ids.weight, std=0.02)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.ids(items), self.features[items]], dim=1)
        return F.normalize(self.mlp(x), dim=1)


class TwoTower(nn.Module):
    """Both towers and the history table; `forward` gives one batch's user and item vectors, so a
    DistributedDataParallel wrapper sees every parameter used in one call."""

    def __init__(self, config: TowerConfig, item_features: torch.Tensor) -> None:
        super().__init__()
        self.config = config
        self.user = UserTower(config)
        self.item = ItemTower(config, item_features)
        self.history = nn.Embedding(config.items, config.dim)
        nn.init.normal_(self.history.weight, std=0.02)

    def pooled_history(self, bags: Bags) -> torch.Tensor:
        """Weighted mean history vector per row (zero for an empty history)."""
        return F.embedding_bag(bags.flat, self.history.weight, bags.offsets, mode="sum",
                               per_sample_weights=bags.weights)

    def forward(self, users: torch.Tensor, items: torch.Tensor, numeric: torch.Tensor, categorical: torch.Tensor,
                bags: Bags) -> tuple[torch.Tensor, torch.Tensor]:
        history = self.pooled_history(bags)
        return self.user(users, history, numeric, categorical), self.item(items)

    @torch.no_grad()
    def item_embeddings(self) -> torch.Tensor:
        return self.item(torch.arange(self.config.items, device=self.history.weight.device))


class ServingUserTower(nn.Module):
    """The user tower as serving runs it: each known user's history vector is a constant table (the
    mean over their training positives, as evaluation uses it), so only ids and features go in."""

    def __init__(self, model: TwoTower, history: torch.Tensor) -> None:
        super().__init__()
        self.tower = model.user
        self.register_buffer("history", history)

    def forward(self, users: torch.Tensor, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return self.tower(users, self.history[users], numeric, categorical)
