"""Built-in job types. `demo.sleep` exercises the whole job machinery without doing real work."""

from __future__ import annotations

import time
from typing import Any

from rest_framework import serializers

from jobs import registry
from jobs.runner import JobContext


class DemoParams(serializers.Serializer):
    steps = serializers.IntegerField(min_value=1, max_value=1000, default=20)
    step_seconds = serializers.FloatField(min_value=0.0, max_value=10.0, default=0.25)


def validate_demo(params: dict[str, Any]) -> dict[str, Any]:
    serializer = DemoParams(data=params)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


@registry.register("demo.sleep", label="Demo job", validate=validate_demo, submittable=True)
def demo_sleep(ctx: JobContext) -> dict[str, Any]:
    """Count through `steps` steps, sleeping between them, reporting progress after each."""
    steps = int(ctx.params.get("steps", 20))
    pause = float(ctx.params.get("step_seconds", 0.25))
    for step in range(1, steps + 1):
        time.sleep(pause)
        ctx.progress(100 * step / steps, f"step {step} of {steps}")
    return {"steps": steps}
