"""The Celery app: JSON only, late acknowledgement, named queues, the beat schedule in code."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlops_portal.settings")

app = Celery("mlops_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")

QUEUES = ("default", "training", "deployments")
app.conf.task_queues = [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES]
app.conf.task_default_exchange = "default"
app.conf.task_default_routing_key = "default"


@app.on_after_finalize.connect
def _schedule(sender: Celery, **kwargs: object) -> None:
    from django.conf import settings

    sender.add_periodic_task(settings.JOB_RECONCILE_INTERVAL, sender.signature("jobs.reconcile"), name="reconcile jobs")
    # Rollouts whose job ended without ending them give the traffic back to their baseline.
    sender.add_periodic_task(
        settings.JOB_RECONCILE_INTERVAL, sender.signature("deployments.reconcile_rollouts"), name="reconcile rollouts"
    )
    # Sweeps whose trial-finished hook was lost with its process start their next trials.
    sender.add_periodic_task(
        settings.JOB_RECONCILE_INTERVAL, sender.signature("experiments.advance_sweeps"), name="advance sweeps"
    )
    # Pipelines: due schedules start their runs; running runs move on if a job's end went unheard.
    sender.add_periodic_task(settings.PIPELINE_TICK_SECONDS, sender.signature("pipelines.tick"), name="pipelines")
    # Per-minute monitoring rollups from the prediction log and late feedback.
    sender.add_periodic_task(settings.ROLLUP_INTERVAL_SECONDS, sender.signature("monitoring.rollup"), name="rollups")
    sender.add_periodic_task(settings.DRIFT_INTERVAL_SECONDS, sender.signature("monitoring.drift"), name="drift")
    sender.add_periodic_task(settings.ALERT_EVAL_SECONDS, sender.signature("monitoring.evaluate_alerts"), name="alerts")
    sender.add_periodic_task(3600.0, sender.signature("monitoring.prune"), name="retention")


app.autodiscover_tasks()
