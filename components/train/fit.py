"""Training: sampled softmax over in-batch negatives with the logQ correction (Yi et al. 2019): each
logit loses log of its item's sampling probability (times `logq`), so popular items, which appear as
negatives more often, are not pushed down just for being popular. Every rank trains on its own
DistributedSampler shard with DistributedDataParallel keeping the replicas equal."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from hyperparameters import Hyperparameters
from model import TowerConfig, TwoTower
from prepare import Prepared
from ranking import evaluate
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    loss: float
    recall: float | None  # on the holdout, when this rank evaluates
    ndcg: float | None
    seconds: float


def device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def build(data: Prepared, hp: Hyperparameters) -> TwoTower:
    config = TowerConfig(data.users, data.items, data.item_features.shape[1], data.user_features.numeric_width,
                         tuple(data.user_features.vocabulary_sizes), hp.embedding_dim, hp.hidden, hp.dropout)
    return TwoTower(config, torch.from_numpy(data.item_features))


@torch.no_grad()
def user_vectors(model: TwoTower, data: Prepared, hp: Hyperparameters, users: np.ndarray) -> torch.Tensor:
    """Users as evaluation and serving see them: full training history, features as of the last row."""
    at = model.history.weight.device
    bags = data.bags(users, data.history_ends(users), hp.history_length, hp.history_decay).to(at)
    return model.user(torch.from_numpy(users).to(at), model.pooled_history(bags),
                      torch.from_numpy(data.query_numeric[users]).to(at),
                      torch.from_numpy(data.query_categorical[users]).to(at))


@torch.no_grad()
def scores(model: TwoTower, data: Prepared, hp: Hyperparameters, users: np.ndarray) -> np.ndarray:
    model.eval()
    result = (user_vectors(model, data, hp, users) @ model.item_embeddings().T).float().cpu().numpy()
    model.train()
    return result


def train(model: TwoTower, data: Prepared, hp: Hyperparameters, seed: int, k: int, evaluate_epochs: bool = True,
          on_epoch: Callable[[EpochResult], None] = lambda _: None) -> list[EpochResult]:
    """Train in place. With torch.distributed initialized, each rank takes its DistributedSampler shard
    and DDP averages the gradients, so the replicas stay equal and one rank's evaluation is everyone's."""
    at = device()
    model.to(at)
    distributed = dist.is_available() and dist.is_initialized()
    wrapped: torch.nn.Module = DistributedDataParallel(model, device_ids=[at.index] if at.type == "cuda" else None) \
        if distributed else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.learning_rate, weight_decay=hp.weight_decay)
    # The in-batch negatives are other rows' positives, so an item is one as often as it is liked.
    counts = np.bincount(data.train_items, minlength=data.items).astype(np.float64)
    log_q = torch.from_numpy(np.log(np.maximum(counts, 1.0) / max(counts.sum(), 1.0))).float().to(at)
    sampler = DistributedSampler(range(len(data.train_items)), num_replicas=dist.get_world_size() if distributed
                                 else 1, rank=dist.get_rank() if distributed else 0, shuffle=True, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    steps = hp.epochs * math.ceil(len(sampler) / hp.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=hp.learning_rate, total_steps=max(steps, 1),
                                                   pct_start=0.1)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=at.type == "cuda")
    results = []
    for epoch in range(1, hp.epochs + 1):
        started = time.monotonic()
        sampler.set_epoch(epoch)
        order = np.fromiter(iter(sampler), dtype=np.int64)
        total, batches = 0.0, 0
        for start in range(0, len(order), hp.batch_size):
            rows = order[start:start + hp.batch_size]
            users, items = data.train_users[rows], data.train_items[rows]
            # A positive's history is what its user liked before it, as evaluation sees only the past.
            bags = data.bags(users, rows, hp.history_length, hp.history_decay).to(at)
            ids = torch.from_numpy(users).to(at)
            if hp.user_id_dropout > 0:
                dropped = torch.rand(len(rows), generator=generator) < hp.user_id_dropout
                ids = torch.where(dropped.to(at), torch.zeros_like(ids), ids)
            target = torch.from_numpy(items).to(at)
            with autocast:
                u, v = wrapped(ids, target, torch.from_numpy(data.train_numeric[rows]).to(at),
                               torch.from_numpy(data.train_categorical[rows]).to(at), bags)
                logits = (u @ v.T).float() / hp.temperature - hp.logq * log_q[target].unsqueeze(0)
            # The same item twice in a batch is not a negative of itself.
            same = (target.unsqueeze(0) == target.unsqueeze(1)) & ~torch.eye(len(rows), dtype=torch.bool, device=at)
            logits = logits.masked_fill(same, float("-inf"))
            loss = F.cross_entropy(logits, torch.arange(len(rows), device=at))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item()
            batches += 1
        mean_loss = total / max(batches, 1)
        if distributed:
            reduced = torch.tensor([mean_loss], device=at)
            dist.all_reduce(reduced)
            mean_loss = reduced.item() / dist.get_world_size()
        recall, ndcg = evaluate(scores(model, data, hp, data.holdout.users), data.holdout, k) \
            if evaluate_epochs else (None, None)
        result = EpochResult(epoch, mean_loss, recall, ndcg, time.monotonic() - started)
        results.append(result)
        on_epoch(result)
    return results
