"""Exports for teams that outgrow one machine: an Airflow DAG file and a Kubeflow Pipelines v2 YAML (compiled
by kfp), both running each step with `manage.py run_step`, which records it in a shared portal run."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.test import Client

from pipelines import services
from pipelines.models import PipelineRun, RunStatus
from tests.conftest import bearer
from tests.pipelines.test_engine import DIAMOND

ROOT = Path(__file__).resolve().parents[2]


def first_step(**extra: Any) -> dict[str, Any]:
    """The diamond, its first step with `extra` settings."""
    return {**DIAMOND, "steps": [{**DIAMOND["steps"][0], **extra}, *DIAMOND["steps"][1:]]}


class FakeAirflow:
    """Just enough of Airflow's API to execute an exported DAG file and read back what it built."""

    def __init__(self) -> None:
        self.dags: list[Any] = []
        test = self

        class DAG:
            def __init__(self, **kwargs: Any) -> None:
                self.kwargs, self.tasks = kwargs, {}
                test.dags.append(self)

            def __enter__(self) -> DAG:
                FakeAirflow.current = self
                return self

            def __exit__(self, *exc: Any) -> None:
                FakeAirflow.current = None

        class BashOperator:
            def __init__(self, **kwargs: Any) -> None:
                self.kwargs, self.upstream = kwargs, set()
                FakeAirflow.current.tasks[kwargs["task_id"]] = self

            def __rshift__(self, other: Any) -> Any:
                other.upstream.add(self.kwargs["task_id"])
                return other

        airflow = types.ModuleType("airflow")
        airflow.DAG = DAG  # type: ignore[attr-defined]
        bash = types.ModuleType("airflow.operators.bash")
        bash.BashOperator = BashOperator  # type: ignore[attr-defined]
        self.modules = {"airflow": airflow, "airflow.operators": types.ModuleType("airflow.operators"),
                        "airflow.operators.bash": bash}  # fmt: skip

    current: Any = None


def test_the_airflow_export_is_a_dag_of_run_step_tasks_wired_like_the_pipeline(
    editor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    version, _ = services.save_definition("diamond", first_step(retries=2, timeout_seconds=60), actor=editor)
    services.create_schedule(version.pipeline, "@daily", actor=editor)
    response = Client(**bearer(editor)).get("/api/v1/pipelines/diamond/export/airflow/")
    assert response.status_code == 200 and response["Content-Disposition"] == 'attachment; filename="diamond.py"'
    source = response.content.decode()
    fake = FakeAirflow()
    for name, module in fake.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    exec(compile(source, "diamond.py", "exec"), {"__name__": "exported"})  # noqa: S102  (our own generated code)
    dag = fake.dags[0]
    assert dag.kwargs["dag_id"] == "diamond" and dag.kwargs["schedule"] == "@daily" and not dag.kwargs["catchup"]
    assert dag.kwargs["params"] == {"label": "x"}
    assert {name: task.upstream for name, task in dag.tasks.items()} == {
        "a": set(), "b": {"a"}, "c": {"a"}, "d": {"b", "c"},
    }  # fmt: skip
    a = dag.tasks["a"].kwargs
    assert a["retries"] == 2 and a["execution_timeout"].total_seconds() == 60
    assert "$PORTAL_PARAMS" in a["bash_command"] and "{{" not in a["bash_command"]  # values via the environment
    assert a["env"]["PORTAL_STEP"] == "a" and a["env"]["PORTAL_RUN_KEY"] == "airflow:{{ dag.dag_id }}:{{ run_id }}"
    assert Client(**bearer(editor)).get("/api/v1/pipelines/diamond/export/argo/").status_code == 404


def test_the_kubeflow_export_is_compiled_by_kfp_with_one_portal_task_per_step(editor: Any) -> None:
    version, _ = services.save_definition("diamond", first_step(retries=2), actor=editor)
    response = Client(**bearer(editor)).get(f"/api/v1/pipelines/diamond/export/kubeflow/?version={version.number}")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/yaml")
    spec = yaml.safe_load(response.content)
    assert spec["pipelineInfo"]["name"] == "diamond" and spec["sdkVersion"].startswith("kfp-2.")
    tasks = spec["root"]["dag"]["tasks"]
    ids = {t["taskInfo"]["name"]: task_id for task_id, t in tasks.items()}  # kfp names tasks portal-step, -2...
    needs = {t["taskInfo"]["name"]: sorted(t.get("dependentTasks", [])) for t in tasks.values()}
    assert needs == {"a": [], "b": [ids["a"]], "c": [ids["a"]], "d": sorted([ids["b"], ids["c"]])}
    steps = {
        t["taskInfo"]["name"]: t["inputs"]["parameters"]["step"]["runtimeValue"]["constant"] for t in tasks.values()
    }
    assert steps == {"a": "a", "b": "b", "c": "c", "d": "d"}
    assert tasks[ids["a"]]["retryPolicy"]["maxRetryCount"] == 2 and "retryPolicy" not in tasks[ids["b"]]
    container = next(iter(spec["deploymentSpec"]["executors"].values()))["container"]
    assert container["command"] == ["python", "manage.py", "run_step"] and container["image"] == "mlops-portal:latest"
    assert "{{$.pipeline_job_uuid}}" in yaml.safe_dump(spec)


def test_run_step_does_one_step_in_a_run_the_orchestrators_tasks_share(
    editor: Any, settings: Any, sent: list[int], capsys: Any, tmp_path: Path
) -> None:
    services.save_definition("diamond", DIAMOND, actor=editor)
    common = ["--run-key", "k1", "--params", '{"label": "ext"}', "--orchestrator", "kubeflow"]
    with pytest.raises(CommandError, match="'b' needs a, which did not succeed"):
        call_command("run_step", "diamond", "b", *common)
    for step in ("a", "b", "c"):
        call_command("run_step", "diamond", step, *common, "--outputs-file", str(tmp_path / f"{step}.json"))
    run = PipelineRun.objects.get()
    assert run.trigger == "external" and run.trigger_details == {"key": "k1", "orchestrator": "kubeflow"}
    assert run.params == {"label": "ext"} and run.status == RunStatus.RUNNING
    assert (tmp_path / "b.json").read_text() == '{"seen": {"step": "b", "from_a": 1}, "count": 2}'
    call_command("run_step", "diamond", "d", *common)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and set(run.steps.values_list("status", flat=True)) == {"succeeded"}
    assert run.steps.get(name="d").job.worker.startswith("kubeflow")
    call_command("run_step", "diamond", "a", "--run-key", "k2")
    assert PipelineRun.objects.count() == 2  # another orchestrator run, another portal run
    with pytest.raises(CommandError, match="no step 'zzz'"):
        call_command("run_step", "diamond", "zzz", "--run-key", "k2")
