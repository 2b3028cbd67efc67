"""Thin Celery tasks of deployments (the rollout itself is a `jobs` job: see deployments/rollouts.py)."""

from __future__ import annotations

from celery import shared_task

from deployments import services


@shared_task(name="deployments.reconcile_rollouts", ignore_result=True, acks_late=False)
def reconcile_rollouts() -> list[int]:
    return services.reconcile_rollouts()
