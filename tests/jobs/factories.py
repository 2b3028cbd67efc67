from __future__ import annotations

import factory

from jobs.models import Job, JobStatus


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    type = "demo.sleep"
    status = JobStatus.QUEUED
    params = factory.LazyFunction(lambda: {"steps": 2, "step_seconds": 0})
    max_attempts = 3
