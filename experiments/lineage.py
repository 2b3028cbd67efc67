"""Lineage between dataset versions and runs: which version a run's dataset input is, and back.

A run's dataset input (MLflow `log_input`, stored as a `RunInput`) is linked to a dataset version when

- its digest is the version's SHA-256 or MD5 (all 64 or 32 hex digits), or
- its source names the version by URL: the version's download URL
  `<SITE_URL>/api/v1/datasets/<name>/versions/<n>/download` (what `HTTPDatasetSource` records, and
  what `mlflow.data.from_pandas(df, source=url)` accepts), its API URL, or its page
  `<SITE_URL>/datasets/<name>/versions/<n>/`. Any host is accepted (a portal is often reached by
  several names); the path must be the portal's.

MLflow computes its own digest of a DataFrame (8 hex digits of its contents), which no stored file
has, so a script either passes `digest=<the version's sha256>` or logs the version's URL as source.

Links are computed when read, never stored: a version pushed after the run that logged its digest
links as soon as it exists, and the tracking write path stays untouched. Lookups go by the indexed
digest column; the source match is a substring filter confirmed by the regular expression below.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.urls import reverse

from datasets.dependants import Dependant
from datasets.lineage_hooks import Downstream
from datasets.models import NAME_PATTERN, DatasetVersion
from experiments import permissions
from experiments.models import LifecycleStage, Run, RunInput

DOWNSTREAM_LIMIT = 100  # runs listed on a version's page; a sweep can use one version thousands of times


@cache
def _source_re(prefix: str) -> re.Pattern[str]:
    return re.compile(
        rf"https?://[^/\s\"']+{re.escape(prefix)}(?:/api/v1)?/datasets/(?P<name>{NAME_PATTERN})"
        rf"/versions/(?P<number>\d+)(?:/download|/)?(?=[\"'?#\s]|\Z)"
    )


def source_re() -> re.Pattern[str]:
    """URLs naming a version, under SITE_URL's path prefix if the portal is served below one."""
    return _source_re(urlparse(settings.SITE_URL).path.rstrip("/"))


def versions_named_in(source: str) -> list[tuple[str, int]]:
    """(dataset name, version number) of every portal version URL in a RunInput's source."""
    return [(m["name"], int(m["number"])) for m in source_re().finditer(source or "")]


def _digest_forms(version: DatasetVersion) -> list[str]:
    digests = [version.blob_id, version.blob.md5]
    return [*digests, *(d.upper() for d in digests)]


def inputs_using(version: DatasetVersion) -> QuerySet[RunInput]:
    """The RunInputs linked to `version`, by digest or by a source URL naming it."""
    by_digest = RunInput.objects.filter(digest__in=_digest_forms(version)).values("pk")  # a subquery
    return RunInput.objects.filter(Q(pk__in=by_digest) | Q(pk__in=_inputs_naming(version)))


def _inputs_naming(version: DatasetVersion) -> list[int]:
    """Inputs whose source URL names `version`. The URL is parsed in Python, so the answer is kept
    on the version for the rest of the request: every lineage provider of a page asks."""
    cached = version.__dict__.get("_inputs_naming")
    if cached is None:
        needle = f"/datasets/{version.dataset.name}/versions/{version.number}"
        cached = [
            pk
            for pk, source in RunInput.objects.filter(source__contains=needle).values_list("pk", "source")
            if (version.dataset.name, version.number) in versions_named_in(source)
        ]
        version.__dict__["_inputs_naming"] = cached
    return cached


def runs_using(version: DatasetVersion) -> QuerySet[Run]:
    """Every run with an input linked to `version` (deleted ones too: they can be restored), newest first."""
    run_ids = inputs_using(version).values("run_id")
    return Run.objects.filter(pk__in=run_ids).select_related("experiment").order_by("-start_time", "run_uuid")


def _label(run: Run) -> str:
    return run.name or run.run_uuid[:12]


def run_dependants(version: DatasetVersion, *, user: Any = None) -> list[Dependant]:
    """The dependants provider: a version that runs used cannot be deleted (their lineage would break).
    Runs in experiments `user` cannot read are marked hidden: counted, never named."""
    runs = runs_using(version)
    if user is not None:  # in the same query: whether the user may read each run's experiment
        visible = permissions.visible_experiments(user).filter(pk=OuterRef("experiment_id"))
        runs = runs.annotate(readable=Exists(visible))
    found = []
    for run in runs:
        deleted = run.lifecycle_stage != LifecycleStage.ACTIVE
        where = f"{run.experiment.name}, deleted" if deleted else run.experiment.name
        hidden = user is not None and not run.readable
        found.append(
            Dependant("run", f"{_label(run)} ({where})", reverse("experiments:run", args=[run.pk]), hidden=hidden)
        )
    return found


def runs_downstream(version: DatasetVersion, user: Any) -> list[Downstream]:
    """The downstream provider: the runs `user` may read that used `version`, for its page."""
    runs = runs_using(version).filter(experiment__in=permissions.visible_experiments(user))[:DOWNSTREAM_LIMIT]
    return [
        Downstream(
            "run",
            _label(run),
            reverse("experiments:run", args=[run.pk]),
            context=run.experiment.name,
            context_url=reverse("experiments:experiment", args=[run.experiment_id]),
            status=run.status if run.lifecycle_stage == LifecycleStage.ACTIVE else f"{run.status} (deleted)",
        )
        for run in runs
    ]


def versions_for_inputs(inputs: Iterable[RunInput]) -> dict[int, list[DatasetVersion]]:
    """For the run page: each input's linked versions (input pk → versions), in two queries at most.

    A version its source names comes first, then versions whose bytes have the digest, those of a
    dataset with the input's name first (the same bytes can be a version of several datasets).
    """
    inputs = list(inputs)
    digests = {i.digest.lower() for i in inputs if len(i.digest) in (32, 64)}
    named = {i.pk: versions_named_in(i.source) for i in inputs}
    refs = {ref for found in named.values() for ref in found}
    query = Q(blob_id__in=digests) | Q(blob__md5__in=digests) if digests else Q(pk__in=[])
    for name, number in refs:
        query |= Q(dataset__name=name, number=number)
    if not digests and not refs:
        return {i.pk: [] for i in inputs}
    versions = list(
        DatasetVersion.objects.filter(query).select_related("dataset", "blob").order_by("dataset__name", "number")
    )
    linked: dict[int, list[DatasetVersion]] = {}
    for item in inputs:
        digest = item.digest.lower()
        wanted = named[item.pk]
        by_ref = [v for v in versions if (v.dataset.name, v.number) in wanted]
        by_digest = sorted(
            (v for v in versions if digest in (v.blob_id, v.blob.md5) and v not in by_ref),
            key=lambda v: v.dataset.name != item.name,
        )
        linked[item.pk] = by_ref + by_digest
    return linked


def register() -> None:
    """Called from ExperimentsConfig.ready: tell `datasets` about the runs that use its versions."""
    from datasets.dependants import register_provider
    from datasets.lineage_hooks import register_downstream_provider

    register_provider("experiments.runs", run_dependants)
    register_downstream_provider("experiments.runs", runs_downstream)
