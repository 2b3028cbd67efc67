"""The Kubeflow Pipelines component and pipeline builders of pipelines/exports.py.

kfp reads parameter types from the functions' annotations at run time, so this module does not postpone
annotations (no `from __future__ import annotations`), unlike the rest of the portal.
"""

import json
from typing import Any

from kfp import dsl


def portal_step_component(image: str, version: int) -> Any:
    @dsl.container_component
    def portal_step(pipeline_name: str, step: str, run_key: str, params: str) -> dsl.ContainerSpec:
        return dsl.ContainerSpec(
            image=image,
            command=["python", "manage.py", "run_step"],
            args=[
                pipeline_name,
                step,
                "--run-key",
                run_key,
                "--params",
                params,
                "--orchestrator",
                "kubeflow",
                "--pipeline-version",
                str(version),
            ],
        )

    return portal_step


def pipeline_function(name: str, version: int, order: list[str], steps: dict[str, dict[str, Any]],
                      defaults: dict[str, Any], image: str) -> Any:  # fmt: skip
    """A function kfp's @dsl.pipeline takes: one task per step, in order, each after what it needs."""
    component = portal_step_component(image, version)

    def build(params: str = json.dumps(defaults)) -> None:
        tasks: dict[str, Any] = {}
        for step in order:
            task = component(pipeline_name=name, step=step, run_key=dsl.PIPELINE_JOB_ID_PLACEHOLDER, params=params)
            task.set_display_name(step)
            task.set_caching_options(False)  # the portal decides what is cached (its own step cache)
            if steps[step]["retries"]:
                task.set_retry(num_retries=steps[step]["retries"])
            for need in steps[step]["needs"]:
                task.after(tasks[need])
            tasks[step] = task

    return build
