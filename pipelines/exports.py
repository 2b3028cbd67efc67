"""Export a pipeline for teams that outgrow one machine: an Airflow DAG file, and a Kubeflow Pipelines v2
YAML compiled with the `kfp` compiler.

Both run every step as `python manage.py run_step PIPELINE STEP --run-key <the orchestrator's run id>` on
the portal's code (its container image for Kubeflow, its checkout for Airflow) against the portal's database
and artifact store: the orchestrator owns the order, the retries and the timeouts; the portal still does the
work, checks permissions and records the run, which its pages show like any other (pipelines/external.py).
"""

from __future__ import annotations

import json
from datetime import datetime

from django.conf import settings

from pipelines.models import PipelineVersion
from pipelines.spec import topological


def _identifier(name: str) -> str:
    return "step_" + "".join(c if c.isalnum() else "_" for c in name)


def airflow_dag(version: PipelineVersion) -> str:
    """A DAG file for Airflow 2.4 or newer: one BashOperator per step, wired like the pipeline."""
    pipeline = version.pipeline
    schedule = next((s.cron for s in pipeline.schedules.filter(paused=False)), None)
    steps = {s["name"]: s for s in version.spec["steps"]}
    order = topological(version.spec["steps"])
    lines = [
        f'"""Airflow DAG of the MLOps Portal pipeline {pipeline.name!r}, version {version.number}.',
        "",
        "Exported by the portal (GET /api/v1/pipelines/<name>/export/airflow/). Each task runs one step with",
        "`manage.py run_step` in the portal's checkout (PORTAL_DIR) with the portal's settings in the environment",
        "(DATABASE_URL, ARTIFACT_ROOT...); the tasks of one DAG run share one portal run, keyed by Airflow's run_id.",
        '"""',
        "",
        "import json",
        "import os",
        "from datetime import datetime, timedelta",
        "",
        "from airflow import DAG",
        "from airflow.operators.bash import BashOperator",
        "",
        'PORTAL_DIR = os.environ.get("PORTAL_DIR", "/app")',
        'PORTAL_PYTHON = os.environ.get("PORTAL_PYTHON", "python")',
        f"PIPELINE = {pipeline.name!r}",
        "",
        "",
        "def run_step(step, retries, timeout_seconds):",
        '    """A task running one step of the pipeline through the portal; the values travel in the environment,',
        '    never in the shell string."""',
        "    return BashOperator(",
        "        task_id=step,",
        '        bash_command=\'"$PORTAL_PYTHON" manage.py run_step "$PORTAL_PIPELINE" "$PORTAL_STEP" \'',
        '                     \'--run-key "$PORTAL_RUN_KEY" --params "$PORTAL_PARAMS" --orchestrator airflow \'',
        f"                     '--pipeline-version {version.number}',",
        "        cwd=PORTAL_DIR,",
        "        env={",
        '            "PORTAL_PYTHON": PORTAL_PYTHON, "PORTAL_PIPELINE": PIPELINE, "PORTAL_STEP": step,',
        '            "PORTAL_RUN_KEY": "airflow:{{ dag.dag_id }}:{{ run_id }}",',
        '            "PORTAL_PARAMS": "{{ params | tojson }}",',
        "        },",
        "        append_env=True,",
        "        retries=retries,",
        "        execution_timeout=timedelta(seconds=timeout_seconds) if timeout_seconds else None,",
        "    )",
        "",
        "",
        "with DAG(",
        f"    dag_id={pipeline.name!r},",
        f"    description={(pipeline.description or version.spec.get('description', ''))[:500]!r},",
        f"    schedule={schedule!r},",
        f"    start_date=datetime({datetime.now().year}, 1, 1),",
        "    catchup=False,",
        f"    params=json.loads({json.dumps(json.dumps(version.spec.get('params', {})))}),",
        f'    default_args={{"owner": {(pipeline.owner.get_username() if pipeline.owner else "portal")!r}}},',
        ") as dag:",
    ]
    for name in order:
        step = steps[name]
        lines.append(f"    {_identifier(name)} = run_step({name!r}, {step['retries']}, {step['timeout_seconds']!r})")
    edges = [(need, name) for name in order for need in steps[name]["needs"]]
    if edges:
        lines.append("")
    lines.extend(f"    {_identifier(a)} >> {_identifier(b)}" for a, b in edges)
    return "\n".join(lines) + "\n"


def kfp_yaml(version: PipelineVersion, image: str | None = None) -> str:
    """A Kubeflow Pipelines v2 pipeline (IR YAML) compiled with the kfp compiler: one container task per step
    on the portal's image, ordered with `.after()`, with the step's retries and timeout."""
    import tempfile
    from pathlib import Path

    from kfp import compiler, dsl

    from pipelines.kfp_components import pipeline_function

    pipeline = version.pipeline
    steps = {s["name"]: s for s in version.spec["steps"]}
    build = pipeline_function(pipeline.name, version.number, topological(version.spec["steps"]), steps,
                              version.spec.get("params", {}), image or settings.KUBERNETES_IMAGE)  # fmt: skip
    description = pipeline.description or version.spec.get("description", "") or f"{pipeline.name} v{version.number}"
    compiled = dsl.pipeline(name=pipeline.name, description=description[:500])(build)
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "pipeline.yaml"
        compiler.Compiler().compile(compiled, str(target))
        return target.read_text()
