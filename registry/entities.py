"""Registered models and versions as the MLflow client parses them (model_registry.proto's JSON).

Versions travel as strings ("3"), timestamps as integer milliseconds. Fields that are unset in
MLflow's own answers (a version without a run, an empty status message) are left out, because the
client turns a present-but-empty `run_id` into "" instead of None.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.db.models import Max, Q

from registry.models import ModelVersion, ModelVersionTag, RegisteredModel, RegisteredModelAlias, RegisteredModelTag


def model_version_json(
    version: ModelVersion, *, name: str, aliases: Iterable[str], tags: Iterable[Any]
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name,
        "version": str(version.version),
        "creation_timestamp": version.creation_timestamp,
        "last_updated_timestamp": version.last_updated_timestamp,
        "user_id": version.user_id,
        "current_stage": version.current_stage,
        "description": version.description,
        "source": version.source,
        "status": version.status,
        "tags": [{"key": t.key, "value": t.value} for t in tags],
        "run_link": version.run_link,
        "aliases": sorted(aliases),
    }
    if version.run_id:
        data["run_id"] = version.run_id
    if version.status_message:
        data["status_message"] = version.status_message
    if version.logged_model_id:
        data["model_id"] = version.logged_model_id
    return data


def versions_json(versions: list[ModelVersion]) -> list[dict[str, Any]]:
    """Many versions (of any models) with their tags and aliases, in two queries."""
    ids = [v.pk for v in versions]
    tags: dict[int, list[ModelVersionTag]] = defaultdict(list)
    for tag in ModelVersionTag.objects.filter(version_id__in=ids).order_by("key"):
        tags[tag.version_id].append(tag)
    aliases: dict[int, list[str]] = defaultdict(list)
    for version_id, alias in RegisteredModelAlias.objects.filter(version_id__in=ids).values_list("version_id", "alias"):
        aliases[version_id].append(alias)
    return [model_version_json(v, name=v.model.name, aliases=aliases[v.pk], tags=tags[v.pk]) for v in versions]


def version_json(version: ModelVersion) -> dict[str, Any]:
    return versions_json([version])[0]


def _latest_per_stage(model_ids: list[int]) -> dict[int, list[ModelVersion]]:
    """Each model's highest version in every stage it has versions in, in two queries."""
    tops = (
        ModelVersion.objects.filter(model_id__in=model_ids)
        .values("model_id", "current_stage")
        .annotate(top=Max("version"))
        .values_list("model_id", "top")
    )
    wanted: dict[int, set[int]] = defaultdict(set)
    for model_id, top in tops:
        wanted[model_id].add(top)
    if not wanted:
        return {}
    match = Q()
    for model_id, numbers in wanted.items():
        match |= Q(model_id=model_id, version__in=numbers)
    rows = list(ModelVersion.objects.filter(match).select_related("model").order_by("model_id", "version"))
    out: dict[int, list[ModelVersion]] = defaultdict(list)
    for row in rows:
        out[row.model_id].append(row)
    return out


def registered_models_json(models: list[RegisteredModel]) -> list[dict[str, Any]]:
    """Models with their tags, aliases and latest version per stage, in a fixed number of queries."""
    ids = [m.pk for m in models]
    tags: dict[int, list[RegisteredModelTag]] = defaultdict(list)
    for tag in RegisteredModelTag.objects.filter(model_id__in=ids).order_by("key"):
        tags[tag.model_id].append(tag)
    aliases: dict[int, list[dict[str, str]]] = defaultdict(list)
    for model_id, alias, number in RegisteredModelAlias.objects.filter(model_id__in=ids).values_list(
        "model_id", "alias", "version__version"
    ):
        aliases[model_id].append({"alias": alias, "version": str(number)})
    latest = _latest_per_stage(ids)
    all_latest = [v for versions in latest.values() for v in versions]
    latest_json = dict(zip([v.pk for v in all_latest], versions_json(all_latest), strict=True))
    out = []
    for model in models:
        data: dict[str, Any] = {
            "name": model.name,
            "creation_timestamp": model.creation_timestamp,
            "last_updated_timestamp": model.last_updated_timestamp,
            "description": model.description,
            "tags": [{"key": t.key, "value": t.value} for t in tags[model.pk]],
            "aliases": sorted(aliases[model.pk], key=lambda a: a["alias"]),
        }
        versions = [latest_json[v.pk] for v in latest.get(model.pk, [])]
        if versions:
            data["latest_versions"] = versions
        out.append(data)
    return out


def registered_model_json(model: RegisteredModel) -> dict[str, Any]:
    return registered_models_json([model])[0]
