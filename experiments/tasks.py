"""Thin Celery tasks of experiments."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="experiments.advance_sweeps", ignore_result=True)
def advance_sweeps() -> int:
    from experiments.training.sweeps import advance_sweeps as advance

    return advance()
