"""Deployments pages: the list, a deployment's page with its rollout, and deploying, steering and
rolling back from it, as owner (editor), reader (viewer) and outsider."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from deployments import services
from deployments.models import Rollout, RolloutStatus, Strategy
from registry.models import RegisteredModel
from tests.conftest import make_user
from tests.deployments.conftest import add_version, serve_now


@pytest.fixture
def canary(registered_model: RegisteredModel, editor: Any) -> Any:
    add_version(registered_model, editor)
    add_version(registered_model, editor)
    deployment = services.create_deployment(
        "churn-prod", registered_model, "1", owner=editor, environment="production", strategy=Strategy.CANARY,
        canary_steps=[10, 50, 100], bake_seconds=60,
    )  # fmt: skip
    serve_now(deployment, 1, actor=editor)
    return deployment


def test_the_empty_list_tells_how_to_create_a_deployment(editor_client: Client, registered_model: Any) -> None:
    page = editor_client.get("/deployments/").content.decode()
    assert "No deployments yet" in page and "/api/v1/deployments/churn-prod/deploy/" in page


def test_the_list_shows_what_serves_and_the_rollout_in_flight_in_few_queries(
    editor_client: Client, canary: Any, editor: Any, django_assert_max_num_queries: Any
) -> None:
    services.shift_traffic(services.deploy(canary, 2, actor=editor), 0)
    for i in range(3):
        serve_now(services.create_deployment(f"other-{i}", canary.registered_model, "1", owner=editor), actor=editor)
    with django_assert_max_num_queries(12):
        page = editor_client.get("/deployments/").content.decode()
    assert 'href="/deployments/churn-prod/"' in page
    assert "v1 · 90%" in page and "v2 · 10%" in page and "Rolling Out" in page


def test_the_page_shows_the_rollout_steps_gates_health_and_controls(
    editor_client: Client, canary: Any, editor: Any
) -> None:
    rollout = services.shift_traffic(services.deploy(canary, 2, actor=editor), 1)
    Rollout.objects.filter(pk=rollout.pk).update(
        gates=[{"name": "holdout_accuracy", "passed": True, "message": "accuracy 0.9700 on 500 rows"}],
        health={"candidate": {"requests": 40, "errors": 1, "error_rate": 0.025, "p95_ms": 4.2},
                "baseline": {"requests": 40, "errors": 0, "error_rate": 0.0, "p95_ms": 3.9}},
    )  # fmt: skip
    page = editor_client.get("/deployments/churn-prod/").content.decode()
    assert "Rollout in progress: version 2" in page and 'id="job-live"' in page  # polls while live
    assert '<li class="done">10%</li>' in page and '<li class="current">50%</li>' in page
    assert "accuracy 0.9700 on 500 rows" in page and "4.2 ms" in page
    for action in ("pause", "promote", "rollback"):
        assert f'action="/deployments/churn-prod/rollout/{action}"' in page
    assert "v1 · 50%" in page and "v2 · 50%" in page


def test_an_editor_deploys_pauses_promotes_and_rolls_back_from_the_page(
    editor_client: Client, canary: Any, editor: Any
) -> None:
    response = editor_client.post("/deployments/churn-prod/deploy", {"target": "2"})
    assert response.status_code == 302
    rollout = services.current_rollout(canary)
    assert rollout.revision.model_version.version == 2
    page = editor_client.get("/deployments/churn-prod/").content.decode()
    assert "Rolling out version 2." in page
    services.shift_traffic(rollout, 0)
    editor_client.post("/deployments/churn-prod/rollout/pause")
    assert Rollout.objects.get(pk=rollout.pk).paused is True
    editor_client.post("/deployments/churn-prod/rollout/promote")
    assert Rollout.objects.get(pk=rollout.pk).status == RolloutStatus.SUCCEEDED
    first = canary.revisions.get(model_version__version=1, state="retired")
    editor_client.post(f"/deployments/churn-prod/revisions/{first.pk}/rollback")
    assert [r.model_version.version for r in services.active_revisions(canary)] == [1]
    page = editor_client.get("/deployments/churn-prod/").content.decode()
    assert "Version 1 serves all the traffic again." in page and "Rolled Back" in page


def test_a_bad_deploy_is_a_message_not_an_error(editor_client: Client, canary: Any) -> None:
    response = editor_client.post("/deployments/churn-prod/deploy", {"target": "9"}, follow=True)
    assert response.status_code == 200 and "has no version 9" in response.content.decode()
    response = editor_client.post("/deployments/churn-prod/rollout/dance", follow=True)
    assert "No rollout of this deployment is in progress" in response.content.decode()


def test_readers_see_it_without_controls_and_outsiders_get_404(
    canary: Any, viewer_client: Client, django_user_model: Any, settings: Any
) -> None:
    page = viewer_client.get("/deployments/churn-prod/").content.decode()
    assert "Timeline" in page and 'id="deploy-form"' not in page and "Serve v1 again" not in page
    assert viewer_client.post("/deployments/churn-prod/deploy", {"target": "2"}).status_code == 403
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"  # only grants count
    client = Client()
    client.force_login(make_user(django_user_model, "otto", "editor"))
    assert client.get("/deployments/churn-prod/").status_code == 404
    assert client.post("/deployments/churn-prod/rollout/pause").status_code == 404
    assert "churn-prod" not in client.get("/deployments/").content.decode()


def test_only_revisions_that_served_offer_to_serve_again(editor_client: Client, canary: Any, editor: Any) -> None:
    services.rollback_rollout(services.deploy(canary, 2, actor=editor), actor=editor)  # v2 never took traffic
    serve_now(canary, 2, actor=editor)  # a later v2 revision did, and retired v1
    page = editor_client.get("/deployments/churn-prod/").content.decode()
    assert page.count("Serve v1 again") == 1 and "Serve v2 again" not in page
