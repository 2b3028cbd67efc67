"""Reading docker-compose.yml the way Docker Compose does, without Docker: YAML, then ${VAR} interpolation."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"

# What an operator must provide (the `${VAR:?message}` variables); everything else has a default.
REQUIRED_ENV = {"SECRET_KEY": "a-secret-key-given-by-the-operator"}

_VARIABLE = re.compile(
    r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    pass


def interpolate(value: str, environ: Mapping[str, str]) -> str:
    """Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR:+alt}, $$."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        present = name in environ
        current = environ.get(name, "")
        unset_or_empty = not current
        if op in (":-", "-"):
            use_default = unset_or_empty if op == ":-" else not present
            return arg if use_default else current
        if op in (":?", "?"):
            if unset_or_empty if op == ":?" else not present:
                raise MissingVariable(f"{name}: {arg}")
            return current
        if op in (":+", "+"):
            use_alt = not unset_or_empty if op == ":+" else present
            return arg if use_alt else ""
        return current

    return _VARIABLE.sub(replace, value)


def _interpolate_tree(node: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, environ)
    if isinstance(node, list):
        return [_interpolate_tree(item, environ) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(item, environ) for key, item in node.items()}
    return node


def load_compose(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml with anchors merged and variables replaced (REQUIRED_ENV unless `environ`)."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    return _interpolate_tree(raw, REQUIRED_ENV if environ is None else environ)  # type: ignore[no-any-return]


def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())  # type: ignore[no-any-return]


def command_of(service: Mapping[str, Any]) -> list[str]:
    command = service["command"]
    assert isinstance(command, list), "write commands as lists: no shell parses them"
    return [str(part) for part in command]


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def option(args: list[str], *names: str) -> str | None:
    """The value of `--name value` or `--name=value` in a command line."""
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                return args[index + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool

    @property
    def is_bind(self) -> bool:
        return self.source.startswith((".", "/", "~"))

    @property
    def host_path(self) -> Path:
        return (COMPOSE_FILE.parent / self.source).resolve()


def mounts_of(service: Mapping[str, Any]) -> list[Mount]:
    mounts = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, str):
            source, target, *rest = entry.split(":")
            mounts.append(Mount(source, target, "ro" in (rest[0].split(",") if rest else [])))
        else:
            mounts.append(Mount(entry["source"], entry["target"], bool(entry.get("read_only"))))
    return mounts


def mount_of(service: Mapping[str, Any], target_path: str) -> tuple[Mount, str]:
    """The mount under which `target_path` lies in the container, and the path relative to it."""
    best: tuple[Mount, str] | None = None
    for mount in mounts_of(service):
        target = mount.target.rstrip("/")
        if target_path == target or target_path.startswith(target + "/"):
            relative = target_path[len(target) :].lstrip("/")
            if best is None or len(mount.target) > len(best[0].target):
                best = (mount, relative)
    assert best is not None, f"{target_path} is not inside any volume of the service"
    return best


DOCKERFILE = ROOT / "Dockerfile"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in dockerfile_instructions():
        if keyword == "ENV":
            for name, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", arguments):
                env[name] = value
    return env
