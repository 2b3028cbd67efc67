"""Registry pages: the models list, a model's versions and timeline, and moving aliases and stages."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from experiments.models import Run
from registry import services
from registry.models import RegisteredModel, RegistryEvent
from tests.conftest import make_user


@pytest.fixture
def model(editor: Any, run: Run) -> RegisteredModel:
    model = services.create_registered_model("classifier", owner=editor)
    for _ in range(2):
        resolved = services.resolve_source(editor, f"runs:/{run.pk}/model")
        services.create_model_version(model, resolved, source=f"runs:/{run.pk}/model", creator=editor)
    version = model.versions.get(version=1)
    services.set_alias(model, "champion", version, actor=editor)
    return model


def test_the_empty_list_tells_how_to_register_a_model(editor_client: Client, settings: Any) -> None:
    page = editor_client.get("/models/").content.decode()
    assert "No registered models yet" in page
    assert 'mlflow.register_model(f"runs:/{run.info.run_id}/model", "my-model")' in page
    assert f"export MLFLOW_TRACKING_URI={settings.SITE_URL}" in page


def test_the_list_shows_latest_version_aliases_and_update_time(
    editor_client: Client, model: RegisteredModel, django_assert_max_num_queries: Any
) -> None:
    services.create_registered_model("empty-one", owner=None)
    with django_assert_max_num_queries(8):
        page = editor_client.get("/models/").content.decode()
    assert 'href="/models/classifier/"' in page and "v2" in page and "@champion → v1" in page
    assert "empty-one" in page
    assert "classifier" not in editor_client.get("/models/?q=empty").content.decode()


def test_the_model_page_shows_versions_and_the_timeline(
    editor_client: Client, model: RegisteredModel, run: Run
) -> None:
    page = editor_client.get("/models/classifier/").content.decode()
    assert 'id="version-1"' in page and 'id="version-2"' in page
    assert f'href="/experiments/runs/{run.pk}/"' in page
    assert "@champion: (new) → version 1" in page
    assert "Version 2 registered from" in page
    assert 'id="set-alias-form"' in page


def test_an_editor_moves_an_alias_and_a_stage_from_the_page(editor_client: Client, model: RegisteredModel) -> None:
    response = editor_client.post("/models/classifier/alias/", {"alias": "champion", "version": "2"})
    assert response.status_code == 302 and response["Location"] == "/models/classifier/"
    assert model.aliases.get(alias="champion").version.version == 2
    editor_client.post("/models/classifier/stage/", {"version": "1", "stage": "Production"})
    editor_client.post(
        "/models/classifier/stage/", {"version": "2", "stage": "Production", "archive_existing_versions": "on"}
    )
    assert dict(model.versions.values_list("version", "current_stage")) == {1: "Archived", 2: "Production"}
    moves = RegistryEvent.objects.filter(model=model, kind__in=["alias_set", "stage_changed"]).order_by(
        "timestamp", "id"
    )
    assert [(e.kind, e.version, e.from_value, e.to_value, e.actor_name) for e in moves] == [
        ("alias_set", 1, "", "1", "erin"),
        ("alias_set", 2, "1", "2", "erin"),
        ("stage_changed", 1, "None", "Production", "erin"),
        ("stage_changed", 1, "Production", "Archived", "erin"),
        ("stage_changed", 2, "None", "Production", "erin"),
    ]
    page = editor_client.get("/models/classifier/").content.decode()
    assert "@champion: version 1 → version 2" in page and "Version 1: stage Production → Archived" in page
    editor_client.post("/models/classifier/alias/", {"alias": "champion", "action": "delete"})
    assert not model.aliases.exists()


def test_mistakes_are_shown_not_raised(editor_client: Client, model: RegisteredModel) -> None:
    response = editor_client.post("/models/classifier/alias/", {"alias": "latest", "version": "1"}, follow=True)
    assert "reserved" in response.content.decode()
    response = editor_client.post("/models/classifier/stage/", {"version": "1", "stage": "Live"}, follow=True)
    assert "Invalid Model Version stage" in response.content.decode()


def test_readers_see_but_cannot_move(viewer_client: Client, model: RegisteredModel) -> None:
    page = viewer_client.get("/models/classifier/").content.decode()
    assert 'id="version-1"' in page and 'id="set-alias-form"' not in page
    assert viewer_client.post("/models/classifier/alias/", {"alias": "x", "version": "1"}).status_code == 403
    assert viewer_client.post("/models/classifier/stage/", {"version": "1", "stage": "Staging"}).status_code == 403
    assert not model.aliases.filter(alias="x").exists()


def test_a_model_the_user_may_not_read_is_not_found(
    settings: Any, django_user_model: Any, model: RegisteredModel
) -> None:
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"
    client = Client()
    client.force_login(make_user(django_user_model, "mia", "editor"))
    assert client.get("/models/classifier/").status_code == 404
    assert client.post("/models/classifier/alias/", {"alias": "x", "version": "1"}).status_code == 404
    assert "classifier" not in client.get("/models/").content.decode()
