"""The evaluation gate, pure: a new version earns the alias only if its metric lifts enough over the
popularity baseline and (when asked) beats the champion, every number measured by the same run on the
same holdout. A failed gate still leaves the version registered; only the alias stays where it was."""

from __future__ import annotations

from collections.abc import Mapping

from loom.api.trainingjob import Evaluation, Gate, Metric


def metric_key(metric: str, prefix: str = "") -> str:
    """recall@10 -> recall_at_10 (how the trainer logs it to MLflow), with a baseline's prefix."""
    return prefix + metric.replace("@", "_at_")


def judge(evaluation: Evaluation, metrics: Mapping[str, float], alias: str, champion: str | None) -> Gate:
    """`champion` is the version holding evaluation.championAlias (None when nothing holds it yet)."""
    metric = Metric(evaluation.metric).value
    ours = metrics.get(metric_key(metric))
    baseline = metrics.get(metric_key(metric, "popularity_"))
    if ours is None or baseline is None:
        missing = metric_key(metric) if ours is None else metric_key(metric, "popularity_")
        return Gate(passed=False, reason=f"the run logged no {missing} metric to compare")
    lift = ours / baseline if baseline > 0 else float("inf")
    facts = f"{metric} {ours:.4f} is {lift:.2f}x popularity's {baseline:.4f}"
    if lift < evaluation.min_lift_over_baseline:
        return Gate(passed=False, reason=f"{facts}, below the required {evaluation.min_lift_over_baseline:g}x")
    if evaluation.must_beat_champion and champion is not None:
        theirs = metrics.get(metric_key(metric, "champion_"))
        if theirs is None:
            return Gate(passed=False, reason=f"{facts}, but the run did not score the champion "
                                             f"(version {champion}) to compare")
        if ours <= theirs:
            return Gate(passed=False, reason=f"{facts}, but does not beat the champion (version {champion}) "
                                             f"at {theirs:.4f}")
        facts += f" and beats the champion (version {champion}) at {theirs:.4f}"
    elif evaluation.must_beat_champion:
        facts += f"; no version holds @{evaluation.champion_alias} yet"
    return Gate(passed=True, alias=alias, reason=facts)
