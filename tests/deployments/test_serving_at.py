""" "Which version served production at 14:00 last Tuesday": answered from the timeline, over the API
and on the deployment's page, with a one-click way to serve that version again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client

from deployments import queries, services
from deployments.models import DeploymentEvent, Strategy
from registry.models import RegisteredModel
from tests.conftest import bearer
from tests.deployments.conftest import add_version, serve_now

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday


@pytest.fixture
def history(registered_model: RegisteredModel, editor: Any) -> Any:
    """v1 from 12:00; a canary of v2 at 10 % from 13:00 and 50 % from 13:30; v2 alone from 14:30;
    rolled back to v1 at 16:00. Each event's time is set to the hour it stands for."""
    for _ in range(2):
        add_version(registered_model, editor)
    deployment = services.create_deployment(
        "churn-prod", registered_model, "1", owner=editor, strategy=Strategy.CANARY, canary_steps=[10, 50, 100]
    )
    first = serve_now(deployment, 1, actor=editor)
    rollout = services.deploy(deployment, 2, actor=editor)
    services.shift_traffic(rollout, 0)
    services.shift_traffic(rollout, 1)
    services.complete_rollout(rollout, actor=editor)
    services.rollback(deployment, first, actor=editor)
    times = iter(
        T0 + timedelta(minutes=m)
        for m in (-60, 0, 0, 0, 60, 60, 90, 150, 240)  # created, v1 (started, shifted, promoted), v2 ..., rollback
    )
    for event in deployment.events.order_by("id"):
        DeploymentEvent.objects.filter(pk=event.pk).update(time=next(times))
    return deployment


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [(-30, {}), (0, {1: 100}), (59, {1: 100}), (60, {2: 10, 1: 90}), (100, {2: 50, 1: 50}), (200, {2: 100}),
     (240, {1: 100}), (10_000, {1: 100})],
)  # fmt: skip
def test_the_split_at_any_moment_is_rebuilt_from_the_timeline(
    history: Any, minutes: int, expected: dict[int, int]
) -> None:
    assert queries.serving_at(history, T0 + timedelta(minutes=minutes)).weights == expected


def test_the_api_answers_with_versions_weights_and_the_event_that_set_them(history: Any, viewer: Any) -> None:
    body = (
        Client(**bearer(viewer)).get("/api/v1/deployments/churn-prod/serving/", {"at": "2026-11-24T13:45:00Z"}).json()
    )
    assert body["versions"] == [{"version": 2, "traffic_weight": 50}, {"version": 1, "traffic_weight": 50}]
    assert body["since"].startswith("2026-11-24T13:30:00")
    naive = Client(**bearer(viewer)).get("/api/v1/deployments/churn-prod/serving/", {"at": "2026-11-24 15:00"}).json()
    assert naive["versions"] == [{"version": 2, "traffic_weight": 100}]  # no offset: UTC
    for at in ("last tuesday", "0001-01-01T00:00+05:00", "9999-12-31T23:59-05:00"):
        bad = Client(**bearer(viewer)).get("/api/v1/deployments/churn-prod/serving/", {"at": at})
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "at", at


def test_the_page_answers_and_offers_to_serve_that_version_again(history: Any, editor_client: Client) -> None:
    page = editor_client.get("/deployments/churn-prod/", {"at": "2026-11-24T15:00"}).content.decode()
    assert "<strong>version 2</strong> at 100%" in page
    assert "Serve v2 again" in page  # v2 is retired now: one click brings it back
    page = editor_client.get("/deployments/churn-prod/", {"at": "2026-11-24T11:00"}).content.decode()
    assert "Nothing served at 2026-11-24 11:00:00 UTC." in page
    assert "Give a date and time" in editor_client.get("/deployments/churn-prod/", {"at": "soon"}).content.decode()
