"""Definitions: checked when saved, every problem named where it is; templates keep types."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.spec import SpecError, parse, render, validate


def step(name: str, needs: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "function", "needs": needs or [],
            "args": {"function": "pipelines.functions.echo", "kwargs": extra.pop("kwargs", {})}, **extra}  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "where", "words"),
    [
        ([], "definition", "a JSON object"),
        ({"steps": []}, "steps", "a list of 1 to 50 steps"),
        ({"steps": [step("a")], "extra": 1}, "extra", "unknown key"),
        ({"steps": [{**step("a"), "type": "nope"}]}, "steps[0].type", "one of"),
        ({"steps": [step("a"), step("a")]}, "steps[1].name", "two steps are called 'a'"),
        ({"steps": [step("A b")]}, "steps[0].name", "lowercase"),
        ({"steps": [step("a", ["ghost"])]}, "steps[0].needs", "no other step is called 'ghost'"),
        ({"steps": [step("a", ["b"]), step("b", ["a"])]}, "steps", "cycle: a → b → a"),
        ({"steps": [step("a", retries=11)]}, "steps[0].retries", "0 to 10"),
        ({"steps": [step("a", timeout_seconds=0)]}, "steps[0].timeout_seconds", "1 to 604800"),
        ({"steps": [{**step("a"), "colour": "red"}]}, "steps[0].colour", "unknown key"),
        ({"steps": [{"name": "a", "type": "function", "args": {"function": "os.system"}}]}, "steps[0].args.function",
         "not one of PIPELINE_FUNCTIONS"),
        ({"steps": [{"name": "a", "type": "train", "args": {"dataset": "d"}}]}, "steps[0].args.experiment",
         "required"),
        ({"steps": [{"name": "a", "type": "validate_dataset", "args": {"dataset": "d", "version": 0}}]},
         "steps[0].args.version", "greater than or equal to 1"),
        ({"steps": [step("a", kwargs={"x": "{{ params.nope }}"})]}, "steps[0].args", "no parameter 'nope'"),
        ({"steps": [step("a"), step("b", kwargs={"x": "{{ steps.a.outputs.k }}"})]}, "steps[1].args",
         "'a' is not upstream of this step"),
        ({"steps": [step("a", kwargs={"x": "{{ os.environ }}"})]}, "steps[0].args", "use params."),
    ],
)  # fmt: skip
def test_a_bad_definition_is_refused_naming_the_place(spec: Any, where: str, words: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate(spec)
    assert caught.value.where == where and words in caught.value.message, str(caught.value)


def test_a_good_definition_gets_its_defaults_and_a_templated_argument_waits_for_the_run() -> None:
    spec = validate({"params": {"n": 3}, "steps": [
        {"name": "v", "type": "validate_dataset", "args": {"dataset": "d", "min_rows": "{{ params.n }}"}},
        step("b", "v"),
    ]})  # fmt: skip
    assert spec["steps"][1] == {**step("b", ["v"]), "retries": 0, "timeout_seconds": None, "cache": True}
    register = {"name": "r", "type": "register", "args": {"model": "m", "source": "runs:/x/model"}}
    assert validate({"steps": [register]})["steps"][0]["cache"] is False  # side effects: never cached


def test_templates_keep_the_type_of_a_whole_value_and_text_inside_a_string() -> None:
    outputs = {"uri": "runs:/1/model", "d": {"k": 1}}
    context = {"params": {"n": 3, "name": "churn"}, "steps": {"a": {"outputs": outputs}}, "event": {"version": 7},
               "run": {"number": 2}}  # fmt: skip
    value = {"n": "{{ params.n }}", "text": "{{ params.name }}-v{{ event.version }}",
             "list": ["{{ steps.a.outputs.d }}"], "plain": 1.5, "run": "#{{run.number}}"}  # fmt: skip
    assert render(value, context) == {"n": 3, "text": "churn-v7", "list": [{"k": 1}], "plain": 1.5, "run": "#2"}
    with pytest.raises(SpecError):
        render("{{ steps.b.outputs.uri }}", context)


def test_definitions_parse_from_yaml_or_json_and_never_build_objects() -> None:
    assert parse('{"steps": []}') == {"steps": []}
    assert parse("steps:\n  - name: a\n    type: function\n") == {"steps": [{"name": "a", "type": "function"}]}
    with pytest.raises(SpecError):
        parse("!!python/object/apply:os.system ['echo hi']")
