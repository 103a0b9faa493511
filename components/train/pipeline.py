"""One training run from train.json to a registered version: read the pinned data, split the holdout,
train on every rank, then on rank 0 measure the model, popularity, EASE and the champion on the same
holdout, log everything to MLflow and register the version."""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
import torch.distributed as dist
import tracking
from baselines import ease_scores, ease_weights, popularity
from champion import champion_scores
from contract import InputError, TrainConfig
from export import write
from fit import EpochResult, build, train
from hyperparameters import Hyperparameters, parse
from prepare import Columns, Prepared, prepare
from ranking import evaluate
from sources import item_rows, training_rows

ENTRYPOINT = "two_tower"
EASE_L2 = 500.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def init_distributed() -> int:
    """Join the process group torchrun (or Kubeflow's torch runtime) describes; this process's rank."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    return dist.get_rank()


def load_data(config: TrainConfig) -> Prepared:
    rows, feature_columns = training_rows(config)
    labels, items = config.labels, config.items
    data = prepare(rows, feature_columns, item_rows(items),
                   Columns(labels.user_field, labels.item_field, labels.label_field, labels.timestamp_field,
                           items.key_field if items else labels.item_field),
                   config.evaluation.holdout_fraction, config.evaluation.positive_rating)
    if len(data.holdout.users) == 0:
        raise InputError(f"no user has a positive (>= {config.evaluation.positive_rating}) to hold out "
                         f"in {labels.table} at snapshot {labels.snapshot_id}")
    return data


def baseline_metrics(data: Prepared, k: int) -> dict[str, float]:
    users, holdout = data.holdout.users, data.holdout
    pop = popularity(data.positives)
    metrics = dict(zip((f"popularity_recall_at_{k}", f"popularity_ndcg_at_{k}"),
                       evaluate(np.tile(pop, (len(users), 1)), holdout, k)))
    weights = ease_weights(data.positives, EASE_L2)
    metrics.update(zip((f"ease_recall_at_{k}", f"ease_ndcg_at_{k}"),
                       evaluate(ease_scores(holdout.seen, weights), holdout, k)))
    return metrics


def run(config: TrainConfig) -> dict[str, Any] | None:
    """Train and, on rank 0, evaluate, log and register; rank 0's result, None on the other ranks."""
    if config.model.entrypoint != ENTRYPOINT:
        raise InputError(f"model.entrypoint: {config.model.entrypoint!r} is not a builtin trainer ({ENTRYPOINT})")
    try:
        hp = parse(config.model.hyperparameters)
    except ValueError as error:
        raise InputError(str(error)) from error
    rank = init_distributed()
    try:
        return _run(config, hp, rank)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _run(config: TrainConfig, hp: Hyperparameters, rank: int) -> dict[str, Any] | None:
    seed, k = config.run.seed, config.evaluation.k
    torch.manual_seed(seed)
    np.random.seed(seed)
    data = load_data(config)
    log(f"rank {rank}: {data.rows} rows, {data.users - 1} users, {data.items - 1} items, "
        f"{len(data.train_items)} training positives, {len(data.holdout.users)} users held out")
    model = build(data, hp)
    if rank != 0:
        train(model, data, hp, seed, k, evaluate_epochs=False,
              on_epoch=lambda r: log(f"rank {rank}: epoch {r.epoch}/{hp.epochs} loss {r.loss:.4f}"))
        return None

    params = hp.to_params()
    run_id = tracking.start(config, params)
    try:
        result = _train_and_register(config, hp, data, model, run_id)
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run()
    return result


def _train_and_register(config: TrainConfig, hp: Hyperparameters, data: Prepared, model: torch.nn.Module,
                        run_id: str) -> dict[str, Any]:
    k = config.evaluation.k
    recall, ndcg = f"recall_at_{k}", f"ndcg_at_{k}"

    def progress(r: EpochResult) -> None:
        log(f"epoch {r.epoch}/{hp.epochs} loss {r.loss:.4f} recall@{k} {r.recall:.4f} ndcg@{k} {r.ndcg:.4f} "
            f"({r.seconds:.1f}s)")
        mlflow.log_metrics({"epoch": r.epoch, "loss": r.loss, recall: r.recall or 0.0, ndcg: r.ndcg or 0.0},
                           step=r.epoch)

    results = train(model, data, hp, config.run.seed, k, on_epoch=progress)
    metrics = {recall: results[-1].recall or 0.0, ndcg: results[-1].ndcg or 0.0}
    metrics.update(baseline_metrics(data, k))
    with tempfile.TemporaryDirectory(prefix="loom-train-") as tmp:
        champion = tracking.champion(config, Path(tmp) / "champion")
        if champion is not None:
            scored = champion_scores(Path(tmp) / "champion", data, data.holdout.users)
            metrics.update(zip((f"champion_{recall}", f"champion_{ndcg}"), evaluate(scored, data.holdout, k)))
            mlflow.set_tag(tracking.CHAMPION_TAG, champion)
        # The model's own final numbers are its last epoch's, already logged at this step.
        mlflow.log_metrics({name: value for name, value in metrics.items() if name not in (recall, ndcg)},
                           step=hp.epochs)
        files = write(model, data, hp, Path(tmp) / "model")
        registered = tracking.log_and_register(config, run_id, files, hp.to_params())
    log(f"trained {config.model.name}: {recall} {metrics[recall]:.4f} (popularity "
        f"{metrics[f'popularity_{recall}']:.4f}, EASE {metrics[f'ease_{recall}']:.4f}"
        + (f", champion v{champion} {metrics[f'champion_{recall}']:.4f}" if champion else "")
        + f"); registered version {registered.version}")
    return {"runId": run_id, "loggedModelId": registered.logged_model_id, "modelVersion": registered.version,
            "metrics": metrics, "rows": data.rows, "users": data.users - 1, "items": data.items - 1}
