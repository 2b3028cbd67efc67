"""Prometheus metrics of the portal itself.

`http_request_duration_seconds` is the histogram the founding document's Grafana "Model Latency"
panel divides (`rate(..._sum[5m]) / rate(..._count[5m])`). With several web worker
processes (granian's), set PROMETHEUS_MULTIPROC_DIR so every one contributes to one exposition.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time spent answering HTTP requests.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class JobCollector(Collector):
    """Job counts by type and status, read from the job table at scrape time.

    Read from the database rather than counted in-process, so every worker's jobs are included and
    the numbers survive restarts.
    """

    def collect(self) -> Iterator[Metric]:
        from django.db.models import Count

        from jobs.models import FINISHED_STATUSES, Job

        current = GaugeMetricFamily("mlops_jobs", "Jobs by type and current status.", labels=["type", "status"])
        finished = CounterMetricFamily(
            "mlops_jobs_finished", "Jobs that reached a final status, by type and status.", labels=["type", "status"]
        )
        rows = Job.objects.values("type", "status").annotate(n=Count("id")).order_by()
        for row in rows:
            current.add_metric([row["type"], row["status"]], row["n"])
            if row["status"] in FINISHED_STATUSES:
                finished.add_metric([row["type"], row["status"]], row["n"])
        yield current
        yield finished


class ModelQualityCollector(Collector):
    """Accuracy from ground-truth feedback over the last hour, per deployment, model version and arm,
    read from the rollups at scrape time (the model server cannot know it: labels arrive later). Only the
    deployments whose model the scraping user may read."""

    def __init__(self, user: object = None) -> None:
        self.user = user

    def _visible(self, rows: Any) -> Any:
        from registry.permissions import visible_models

        return rows.filter(deployment__registered_model__in=visible_models(self.user))

    def collect(self) -> Iterator[Metric]:
        from django.db.models import Sum
        from django.utils import timezone

        from monitoring.models import MinuteRollup
        from monitoring.rollups import epoch_minute

        labels = ["deployment", "model_version", "arm"]
        accuracy = GaugeMetricFamily(
            "mlops_model_accuracy", "Accuracy over the last hour, from feedback.", labels=labels
        )
        labelled = GaugeMetricFamily(
            "mlops_model_labelled_predictions", "Predictions with ground truth over the last hour.", labels=labels
        )
        since = epoch_minute(timezone.now() - timedelta(hours=1))
        rows = (
            self._visible(MinuteRollup.objects.filter(epoch_minute__gte=since, labelled__gt=0))
            .values("deployment__name", "model_version", "arm")
            .annotate(labelled=Sum("labelled"), correct=Sum("correct"))
            .order_by()
        )
        for row in rows:
            key = [row["deployment__name"], str(row["model_version"]), row["arm"]]
            accuracy.add_metric(key, row["correct"] / row["labelled"])
            labelled.add_metric(key, row["labelled"])
        yield accuracy
        yield labelled
        yield self.drift()

    def drift(self) -> Metric:
        """PSI of each feature in each deployment's latest drift window (of the last day)."""
        from django.db.models import OuterRef, Subquery
        from django.utils import timezone

        from monitoring.models import DriftResult

        psi = GaugeMetricFamily(
            "mlops_feature_drift_psi", "PSI of live inputs against the training data, latest window.",
            labels=["deployment", "feature"],
        )  # fmt: skip
        recent = self._visible(DriftResult.objects.filter(window_end__gte=timezone.now() - timedelta(days=1)))
        newest = DriftResult.objects.filter(deployment=OuterRef("deployment")).order_by("-window_end")
        rows = recent.filter(window_end=Subquery(newest.values("window_end")[:1]), psi__isnull=False)
        for name, feature, value in rows.values_list(
            "deployment__name", "feature", "psi"
        ):  # one query, every deployment
            psi.add_metric([name, feature], value)
        return psi


def exposition(user: object = None) -> bytes:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    output = generate_latest(registry)
    jobs_registry = CollectorRegistry()
    jobs_registry.register(JobCollector())
    jobs_registry.register(ModelQualityCollector(user))
    return output + generate_latest(jobs_registry)
