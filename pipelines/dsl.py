"""Pipelines in Python, in the spirit of Airflow and Kubeflow Pipelines: steps wired with `>>`, a
`@pipeline` decorator, outputs passed by reference. It only builds the JSON definition (the same one the API
and the form take); `python manage.py pipeline_apply FILE.py` saves every pipeline a file defines.

    from pipelines.dsl import evaluate, param, pipeline, register, train, validate_dataset

    @pipeline(name="retrain-churn", schedule="@daily", params={"dataset": "churn"})
    def retrain():
        check = validate_dataset("validate", dataset=param("dataset"), columns=["churned"])
        model = train("train", experiment="churn", dataset=param("dataset"), target="churned",
                      trainer="keras_mlp_classifier", params={"epochs": 20})
        gate = evaluate("evaluate", candidate=model.outputs.model, dataset=param("dataset"), target="churned",
                        champion="churn")
        check >> model >> gate >> register("register", model="churn", source=model.outputs.model)

Using a step's output (`model.outputs.model`) makes the step that uses it wait for it, as in Kubeflow; `>>`
adds an order with nothing passed, as in Airflow (`a >> [b, c]` and `[a, b] >> c` too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipelines.spec import references

_COLLECTING: list[list[Step]] = []


def param(name: str) -> str:
    """A reference to a run parameter."""
    return f"{{{{ params.{name} }}}}"


class _Outputs:
    def __init__(self, step: str) -> None:
        self._step = step

    def __getattr__(self, key: str) -> str:
        if key.startswith("_"):
            raise AttributeError(key)
        return f"{{{{ steps.{self._step}.outputs.{key} }}}}"

    def __getitem__(self, key: str) -> str:
        return self.__getattr__(key)


@dataclass
class Step:
    name: str
    type: str
    args: dict[str, Any]
    retries: int = 0
    timeout_seconds: int | None = None
    cache: bool | None = None
    needs: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if _COLLECTING:
            _COLLECTING[-1].append(self)

    @property
    def outputs(self) -> _Outputs:
        return _Outputs(self.name)

    def __rshift__(self, other: Step | list[Step]) -> Step | list[Step]:
        for step in other if isinstance(other, list) else [other]:
            step.needs.add(self.name)
        return other

    def __rrshift__(self, other: list[Step]) -> Step:
        for step in other:
            self.needs.add(step.name)
        return self

    def as_dict(self) -> dict[str, Any]:
        implied = {ref.split(".")[1] for ref in references(self.args) if ref.startswith("steps.")}
        out: dict[str, Any] = {"name": self.name, "type": self.type, "args": self.args,
                               "needs": sorted(self.needs | implied), "retries": self.retries}  # fmt: skip
        if self.timeout_seconds is not None:
            out["timeout_seconds"] = self.timeout_seconds
        if self.cache is not None:
            out["cache"] = self.cache
        return out


def _factory(kind: str) -> Callable[..., Step]:
    def make(name: str, *, retries: int = 0, timeout_seconds: int | None = None, cache: bool | None = None,
             **args: Any) -> Step:  # fmt: skip
        return Step(name, kind, args, retries, timeout_seconds, cache)

    make.__name__ = kind
    make.__doc__ = f"A `{kind}` step; keyword arguments are its args (see docs/pipelines.md)."
    return make


validate_dataset = _factory("validate_dataset")
profile_dataset = _factory("profile_dataset")
train = _factory("train")
evaluate = _factory("evaluate")
register = _factory("register")
deploy = _factory("deploy")
script = _factory("script")


def function(name: str, function: str, *, retries: int = 0, timeout_seconds: int | None = None,
             cache: bool | None = None, **kwargs: Any) -> Step:  # fmt: skip
    """A step that calls a Python function listed in PIPELINE_FUNCTIONS with `kwargs`."""
    return Step(name, "function", {"function": function, "kwargs": kwargs}, retries, timeout_seconds, cache)


@dataclass
class PipelineDefinition:
    name: str
    build: Callable[[], Any]
    description: str = ""
    schedule: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def spec(self) -> dict[str, Any]:
        """The definition the API takes: calling the decorated function collects its steps."""
        _COLLECTING.append([])
        try:
            self.build()
        finally:
            steps = _COLLECTING.pop()
        out: dict[str, Any] = {"params": dict(self.params), "steps": [s.as_dict() for s in steps]}
        if self.description:
            out["description"] = self.description
        return out


def pipeline(name: str, *, description: str = "", schedule: str | None = None,
             params: dict[str, Any] | None = None) -> Callable[[Callable[[], Any]], PipelineDefinition]:  # fmt: skip
    """Declare a pipeline: the decorated function creates its steps and wires them."""

    def decorate(build: Callable[[], Any]) -> PipelineDefinition:
        return PipelineDefinition(name, build, description or (build.__doc__ or "").strip(), schedule, params or {})

    return decorate
