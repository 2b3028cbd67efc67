"""Every URL pattern of the project, with a concrete sample path for each (for the auth walk)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver, resolve

_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<body>(?:[^()]|\([^()]*\))*)\)")
_CANDIDATES = ["1", "x", "jobs", "job", "abc", "a1", "1/2", "x.json", "0" * 30, ".dir"]


@dataclass(frozen=True)
class Route:
    path: str
    name: str
    callback: Callable[..., Any]


def _sample(body: str) -> str:
    words = [w for w in re.split(r"[|()]", body) if re.fullmatch(r"[\w-]+", w)]
    for candidate in [*_CANDIDATES, *words]:
        if re.fullmatch(body, candidate):
            return candidate
    raise AssertionError(f"no sample value matches the URL group {body!r}: extend tests/urlwalk.py")


def _concrete(regex: str) -> str:
    path = _GROUP.sub(lambda m: _sample(m.group("body")), regex)
    path = path.replace("^", "").replace("\\Z", "").replace("$", "")
    path = re.sub(r"\\(.)", r"\1", path)
    return "/" + path


def _walk(patterns: list[Any], prefix: str, namespace: str) -> Iterator[tuple[str, str, Callable[..., Any]]]:
    for entry in patterns:
        regex = entry.pattern.regex.pattern
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, prefix + regex, ns)
        elif isinstance(entry, URLPattern):
            yield prefix + regex, f"{namespace}{entry.name or '?'}", entry.callback


def all_routes() -> list[Route]:
    routes = []
    for regex, name, callback in _walk(get_resolver().url_patterns, "", ""):
        path = _concrete(regex)
        match = resolve(path)  # the sample must reach the very view it was made for
        assert match.func == callback or getattr(match.func, "__wrapped__", None) == callback, (name, path)
        routes.append(Route(path, name, callback))
    return routes
