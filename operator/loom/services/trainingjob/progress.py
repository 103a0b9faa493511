"""How far a running training is, pure: from the per-epoch metrics the trainer logs to MLflow (epoch,
loss, validation metrics; `epochs` as a param) and, when Kubeflow's runtime reports it, TrainJob's own
`trainerStatus`, which wins for percent and time left."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from loom.api.trainingjob import Progress
from loom.domain.training import TrainerProgress
from loom.drivers.mlflow_tracking import TrackedRun

# Metrics that are not validation metrics of the model.
_BOOKKEEPING = {"epoch", "loss"}


def display_name(metric: str) -> str:
    """MLflow forbids '@' in metric names, so the trainer writes recall_at_10 for recall@10."""
    return metric.replace("_at_", "@")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def progress(run: TrackedRun | None, trainer: TrainerProgress | None, hyperparameters: Mapping[str, str],
             now: datetime) -> Progress | None:
    """None until there is something to say."""
    if run is None and trainer is None:
        return None
    epoch = total = percent = remaining = None
    loss = None
    metrics: dict[str, float] = {}
    if run is not None:
        epoch = int(run.metrics["epoch"]) if "epoch" in run.metrics else None
        total = _int(run.params.get("epochs")) or _int(hyperparameters.get("epochs"))
        loss = run.metrics.get("loss")
        metrics = {display_name(k): v for k, v in sorted(run.metrics.items())
                   if k not in _BOOKKEEPING and "_" in k and not k.startswith(("popularity_", "ease_", "champion_"))}
        if epoch is not None and total:
            percent = max(0, min(100, round(100 * epoch / total)))
            if epoch > 0 and run.start_time is not None and epoch < total:
                last = run.epochs_ended[-1] if run.epochs_ended else now
                per_epoch = (last - run.start_time).total_seconds() / epoch
                remaining = max(0, round(per_epoch * (total - epoch) - (now - last).total_seconds()))
            elif epoch >= total:
                remaining = 0
    if trainer is not None:
        percent = trainer.progress_percentage if trainer.progress_percentage is not None else percent
        remaining = (trainer.estimated_remaining_seconds
                     if trainer.estimated_remaining_seconds is not None else remaining)
        metrics = {**metrics, **{display_name(k): v for k, v in trainer.metrics.items()}}
    return Progress(epoch=epoch, total_epochs=total, percent=percent, loss=loss, metrics=metrics,
                    estimated_remaining_seconds=remaining)


def summary(p: Progress | None) -> str:
    """One line for a condition message, e.g. 'epoch 3/8 (38%), loss 0.412, recall@10 0.061, ~40s left'."""
    if p is None:
        return "no progress reported yet"
    parts = []
    if p.epoch is not None:
        parts.append(f"epoch {p.epoch}/{p.total_epochs or '?'}" + (f" ({p.percent}%)" if p.percent is not None else ""))
    elif p.percent is not None:
        parts.append(f"{p.percent}%")
    if p.loss is not None:
        parts.append(f"loss {p.loss:.4g}")
    parts += [f"{k} {v:.4g}" for k, v in p.metrics.items()]
    if p.estimated_remaining_seconds is not None and p.percent != 100:
        parts.append(f"~{p.estimated_remaining_seconds}s left")
    return ", ".join(parts) or "started"
