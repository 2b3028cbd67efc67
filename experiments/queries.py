"""Read-side helpers for tracking: sampled metric histories."""

from __future__ import annotations

from experiments.models import Metric


def sampled_history(
    run_id: str, key: str, max_results: int, start_step: int | None = None, end_step: int | None = None
) -> list[Metric]:
    """At most `max_results` steps of a metric, spread evenly over its distinct steps (MLflow's
    get-history-bulk-interval): the first and last step always included, every point of a chosen step."""
    qs = Metric.objects.filter(run_id=run_id, key=key)
    if start_step is not None:
        qs = qs.filter(step__gte=start_step)
    if end_step is not None:
        qs = qs.filter(step__lte=end_step)
    steps = list(qs.order_by("step").values_list("step", flat=True).distinct())
    if len(steps) > max_results:
        if max_results == 1:
            chosen = {steps[0]}
        else:
            last = len(steps) - 1
            chosen = {steps[round(i * last / (max_results - 1))] for i in range(max_results)}
        qs = qs.filter(step__in=chosen)
    return list(qs.order_by("step", "timestamp").only("run_id", "key", "value", "is_nan", "timestamp", "step"))
