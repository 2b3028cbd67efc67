"""A pipeline's definition: parse (JSON or YAML), check, and template.

    {"params": {"dataset": "churn", "target": "churned"},
     "steps": [
       {"name": "profile", "type": "profile_dataset", "args": {"dataset": "{{ params.dataset }}"}},
       {"name": "train", "type": "train", "needs": ["profile"], "retries": 1, "timeout_seconds": 3600,
        "args": {"experiment": "churn", "dataset": "{{ params.dataset }}", "target": "{{ params.target }}",
                 "trainer": "keras_mlp_classifier"}},
       {"name": "register", "type": "register", "needs": ["train"],
        "args": {"model": "churn", "source": "{{ steps.train.outputs.model }}"}}]}

A string that is exactly one `{{ ... }}` takes the value's own type; `{{ ... }}` inside a longer string is
replaced by its text. Names: `params.<name>`, `steps.<step>.outputs.<key>` (the step must be upstream),
`event.<key>` (what started the run: a dataset trigger's `dataset` and `version`, an alert's `deployment`,
`metric` and `value`) and `run.number`. Every problem is a `SpecError` naming where it is
(`steps[1].needs`), so the API's 400 and the form point at it.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import yaml

NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
TEMPLATE = re.compile(r"\{\{\s*([a-zA-Z0-9_.\-]+)\s*\}\}")
WHOLE = re.compile(r"^\{\{\s*([a-zA-Z0-9_.\-]+)\s*\}\}$")
MAX_STEPS = 50
STEP_KEYS = {"name", "type", "args", "needs", "retries", "timeout_seconds", "cache"}


class SpecError(ValueError):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


MAX_TEXT = 256 * 1024


class _Loader(yaml.SafeLoader):
    """YAML's safe loader without aliases: `&a`/`*a` could make a small text a huge tree."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases (*name) are not allowed")
        return super().compose_node(parent, index)


def parse(text: str) -> Any:
    """JSON or YAML text to a definition (YAML's safe loader: no objects, no code, no aliases), as JSON
    values only: a YAML date or set is refused rather than stored."""
    if len(text) > MAX_TEXT:
        raise SpecError("definition", f"{len(text)} characters; the limit is {MAX_TEXT}")
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        loaded = yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader, without aliases)
    except yaml.YAMLError as exc:
        raise SpecError("definition", f"neither JSON nor YAML ({str(exc).splitlines()[0]})") from None
    return as_json(loaded)


def as_json(value: Any) -> Any:
    """`value` if it is made of JSON values only (no dates, sets, NaN or non-text keys), else a SpecError."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise SpecError("definition", f"only JSON values: strings, numbers, true/false, null, lists, objects "
                        f"({exc})") from None  # fmt: skip


def digest(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def references(value: Any) -> list[str]:
    """Every `{{ name }}` a value uses, nested lists and objects included."""
    if isinstance(value, str):
        return TEMPLATE.findall(value)
    if isinstance(value, list):
        return [ref for item in value for ref in references(item)]
    if isinstance(value, dict):
        return [ref for item in value.values() for ref in references(item)]
    return []


def upstream(steps: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Each step's ancestors (every step it waits for, directly or not)."""
    needs = {s["name"]: set(s.get("needs", [])) for s in steps}
    out: dict[str, set[str]] = {}

    def walk(name: str) -> set[str]:
        if name not in out:
            out[name] = set()
            for parent in needs[name]:
                out[name] |= {parent} | walk(parent)
        return out[name]

    for name in needs:
        walk(name)
    return out


def topological(steps: list[dict[str, Any]]) -> list[str]:
    """Step names in an order where every step comes after what it needs; a cycle is a SpecError."""
    needs = {s["name"]: list(s.get("needs", [])) for s in steps}
    order: list[str] = []
    state: dict[str, int] = {}  # 1: being visited, 2: done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " → ".join([*path[path.index(name) :], name])
            raise SpecError("steps", f"the steps form a cycle: {cycle}")
        state[name] = 1
        for parent in needs[name]:
            visit(parent, [*path, name])
        state[name] = 2
        order.append(name)

    for s in steps:
        visit(s["name"], [])
    return order


def validate(spec: Any) -> dict[str, Any]:
    """The definition, checked and normalised (defaults filled in), or a SpecError naming the problem."""
    from pipelines.steps import STEP_TYPES

    if not isinstance(spec, dict):
        raise SpecError("definition", "a JSON object with params and steps")
    spec = as_json(spec)  # what the API's JSON parser let through may still hold NaN
    unknown = sorted(set(spec) - {"params", "steps", "description"})
    if unknown:
        raise SpecError(unknown[0], "unknown key; a definition has params, steps and description")
    params = spec.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(k, str) and NAME.match(k) for k in params):
        raise SpecError("params", "an object of parameter names (lowercase, digits, _) to their default values")
    steps = spec.get("steps")
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
        raise SpecError("steps", f"a list of 1 to {MAX_STEPS} steps")
    clean: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, step in enumerate(steps):
        where = f"steps[{i}]"
        if not isinstance(step, dict):
            raise SpecError(where, "an object with name, type and args")
        extra = sorted(set(step) - STEP_KEYS)
        if extra:
            raise SpecError(f"{where}.{extra[0]}", f"unknown key; a step has {', '.join(sorted(STEP_KEYS))}")
        name = step.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise SpecError(f"{where}.name", "lowercase letters, digits and _, starting with a letter, at most 64")
        if name in names:
            raise SpecError(f"{where}.name", f"two steps are called {name!r}")
        names.add(name)
        kind = step.get("type")
        if kind not in STEP_TYPES:
            raise SpecError(f"{where}.type", f"one of {', '.join(sorted(STEP_TYPES))}")
        needs = step.get("needs", [])
        if isinstance(needs, str):
            needs = [needs]
        if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
            raise SpecError(f"{where}.needs", "a list of step names")
        retries, timeout, cache = step.get("retries", 0), step.get("timeout_seconds"), step.get("cache")
        if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
            raise SpecError(f"{where}.retries", "a whole number from 0 to 10")
        if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool)
                                    or not 1 <= timeout <= 7 * 24 * 3600):  # fmt: skip
            raise SpecError(f"{where}.timeout_seconds", "a whole number of seconds from 1 to 604800")
        step_type = STEP_TYPES[kind]
        if not isinstance(cache, bool | None):
            raise SpecError(f"{where}.cache", "true or false")
        cache = (cache is not False) and step_type.cacheable  # register and deploy never: they act each time
        args = step.get("args", {})
        if not isinstance(args, dict):
            raise SpecError(f"{where}.args", "an object")
        step_type.check_args(args, f"{where}.args")
        clean.append({"name": name, "type": kind, "args": args, "needs": sorted(set(needs)), "retries": retries,
                      "timeout_seconds": timeout, "cache": cache})  # fmt: skip
    for i, step in enumerate(clean):
        for need in step["needs"]:
            if need not in names or need == step["name"]:
                raise SpecError(f"steps[{i}].needs", f"no other step is called {need!r}")
    topological(clean)
    ancestors = upstream(clean)
    for i, step in enumerate(clean):
        for ref in references(step["args"]):
            _check_reference(ref, f"steps[{i}].args", params, ancestors[step["name"]])
    out: dict[str, Any] = {"params": params, "steps": clean}
    if spec.get("description"):
        out["description"] = str(spec["description"])[:2000]
    return out


def _check_reference(ref: str, where: str, params: dict[str, Any], ancestors: set[str]) -> None:
    parts = ref.split(".")
    if parts[0] == "params" and len(parts) == 2:
        if parts[1] not in params:
            raise SpecError(where, f"{{{{ {ref} }}}}: no parameter {parts[1]!r} (declare it under params)")
    elif parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
        if parts[1] not in ancestors:
            raise SpecError(where, f"{{{{ {ref} }}}}: {parts[1]!r} is not upstream of this step (add it to needs)")
    elif not ((parts[0] == "event" and len(parts) == 2) or ref == "run.number"):
        raise SpecError(
            where, f"{{{{ {ref} }}}}: use params.<name>, steps.<step>.outputs.<key>, event.<key> or run.number"
        )


def render(value: Any, context: dict[str, Any]) -> Any:
    """Fill in the templates of `value` from `context` ({"params", "steps", "event", "run"}); a missing value
    is a SpecError naming the reference."""
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    whole = WHOLE.match(value)
    if whole:
        return _lookup(whole.group(1), context)
    return TEMPLATE.sub(lambda m: _text(_lookup(m.group(1), context)), value)


def _lookup(ref: str, context: dict[str, Any]) -> Any:
    here: Any = context
    for part in ref.split("."):
        if not isinstance(here, dict) or part not in here:
            raise SpecError(ref, f"{{{{ {ref} }}}} has no value in this run")
        here = here[part]
    return here


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
