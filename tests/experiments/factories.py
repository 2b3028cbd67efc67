"""Experiments and runs made through the write path (experiments.services), as the API makes them."""

from __future__ import annotations

from typing import Any

import factory

from experiments import services
from experiments.models import Experiment, Run
from experiments.services import MetricPoint

T0 = 1_700_000_000_000  # a start_time in milliseconds; sequences count up from it


class ExperimentFactory(factory.Factory):
    """`ExperimentFactory(owner=editor, tags={"team": "vision"})`."""

    class Meta:
        model = Experiment

    name = factory.Sequence(lambda n: f"experiment-{n}")
    owner = None
    tags: dict[str, str] = {}

    @classmethod
    def _create(cls, model_class: type[Experiment], *, name: str, owner: Any, tags: dict[str, str]) -> Experiment:
        return services.create_experiment(name, owner=owner, tags=list(tags.items()))


class RunFactory(factory.Factory):
    """`RunFactory(experiment=e, params={"lr": "0.1"}, metrics={"acc": 0.9, "loss": [0.5, 0.2]})`.

    A metric given as a list is logged at steps 0, 1, 2…, so its last item is the latest value.
    """

    class Meta:
        model = Run

    experiment = factory.SubFactory(ExperimentFactory)
    run_name = factory.Sequence(lambda n: f"run-{n}")
    start_time = factory.Sequence(lambda n: T0 + n * 1000)
    user_id = "erin"
    params: dict[str, str] = {}
    tags: dict[str, str] = {}
    metrics: dict[str, float | list[float]] = {}
    status = None
    end_time = None

    @classmethod
    def _create(
        cls,
        model_class: type[Run],
        *,
        experiment: Experiment,
        run_name: str,
        start_time: int,
        user_id: str,
        params: dict[str, str],
        tags: dict[str, str],
        metrics: dict[str, float | list[float]],
        status: str | None,
        end_time: int | None,
    ) -> Run:
        run = services.create_run(
            experiment, user_id=user_id, start_time=start_time, run_name=run_name, tags=list(tags.items())
        )
        services.log_params(run, list(params.items()))
        points = []
        for key, value in metrics.items():
            values = value if isinstance(value, list) else [value]
            points += [MetricPoint(key, float(v), start_time + step, step) for step, v in enumerate(values)]
        services.log_metrics(run, points)
        if status or end_time is not None:
            services.update_run(run, status=status, end_time=end_time, run_name=None)
        return run
