"""The datasets pages: list, dataset timeline with the upload form, version page, delete."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from datasets.dependants import Dependant
from datasets.models import DatasetVersion
from tests.datasets.factories import csv_rows, push

pytestmark = pytest.mark.django_db


def test_an_empty_list_says_how_to_push_the_first_version(editor_client: Client) -> None:
    html = editor_client.get("/datasets/").content.decode()
    assert "No datasets yet" in html and "empty-state" in html
    assert "python manage.py dataset_push my_dataset data/my_dataset.csv" in html
    assert "/api/v1/datasets/my_dataset/versions/?filename=" in html
    assert "data-upload" in html  # editors get the upload form


def test_viewers_see_no_upload_form(viewer_client: Client, editor: Any) -> None:
    push(author=editor)
    for path in ["/datasets/", "/datasets/iris/"]:
        assert "data-upload" not in viewer_client.get(path).content.decode()


def test_the_list_shows_each_datasets_latest_version_in_few_queries(
    editor: Any, viewer_client: Client, django_assert_max_num_queries: Any
) -> None:
    for i in range(8):
        push(f"set{i}", csv_rows(i + 1), author=editor)
    push("set0", csv_rows(1234), author=editor)
    with django_assert_max_num_queries(8):
        html = viewer_client.get("/datasets/").content.decode()
    assert 'href="/datasets/set0/versions/2/">v2</a>' in html and "1,234" in html
    assert html.count('<a class="strong" href="/datasets/set') == 8


def test_the_dataset_page_shows_the_version_timeline(editor: Any, editor_client: Client) -> None:
    push(author=editor, message="initial import")
    push(data=csv_rows(10), author=editor, message="ten rows")
    html = editor_client.get("/datasets/iris/").content.decode()
    assert 'id="version-timeline"' in html
    assert html.index("ten rows") < html.index("initial import")  # newest first
    assert 'data-dataset="iris"' in html and "datasets/datasets.js" in html


def test_the_version_page_shows_every_field_and_the_schema(editor: Any, editor_client: Client) -> None:
    version = push(author=editor, message="the first")
    html = editor_client.get("/datasets/iris/versions/1/").content.decode()
    for text in [version.sha256, version.md5, "the first", "sepal_width", "double", "iris.csv", "erin"]:
        assert text in html
    assert 'href="/api/v1/datasets/iris/versions/1/download"' in html
    assert "Delete version" in html


def test_the_version_page_of_a_directory_dataset_lists_its_files(editor: Any, viewer_client: Client) -> None:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("images/cat.png", b"not really a png")
    push("pics", buffer.getvalue(), author=editor, filename="pics.zip")
    html = viewer_client.get("/datasets/pics/versions/1/").content.decode()
    assert 'id="manifest-table"' in html and "images/cat.png" in html
    assert "Delete version" not in html  # not the viewer's


def test_the_owner_deletes_a_version_from_its_page(editor: Any, editor_client: Client) -> None:
    push(author=editor)
    response = editor_client.post("/datasets/iris/versions/1/delete/", follow=True)
    assert response.redirect_chain[-1][0] == "/datasets/iris/"
    assert "Deleted iris v1." in response.content.decode()
    assert not DatasetVersion.objects.exists()


def test_a_version_in_use_is_not_deleted_and_the_page_says_by_what(
    editor: Any, editor_client: Client, dependants: Callable[..., None]
) -> None:
    version = push(author=editor)
    dependants(version.pk, Dependant("run", "train-1", "/experiments/runs/1/"))
    response = editor_client.post("/datasets/iris/versions/1/delete/", follow=True)
    html = response.content.decode()
    assert "cannot be deleted" in html and "run train-1" in html
    assert DatasetVersion.objects.filter(pk=version.pk).exists()


def test_someone_elses_version_cannot_be_deleted(editor: Any, django_user_model: Any) -> None:
    from tests.conftest import make_user

    push(author=editor)
    other = Client()
    other.force_login(make_user(django_user_model, "oscar", "editor"))
    assert "Delete version" not in other.get("/datasets/iris/versions/1/").content.decode()
    assert other.post("/datasets/iris/versions/1/delete/").status_code == 403
    assert DatasetVersion.objects.exists()


def test_anonymous_visitors_are_sent_to_the_login_page(editor: Any) -> None:
    push(author=editor)
    for path in ["/datasets/", "/datasets/iris/", "/datasets/iris/versions/1/"]:
        response = Client().get(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_unknown_datasets_and_versions_are_404s(viewer_client: Client) -> None:
    assert viewer_client.get("/datasets/nope/").status_code == 404
    assert viewer_client.get("/datasets/nope/versions/1/").status_code == 404
