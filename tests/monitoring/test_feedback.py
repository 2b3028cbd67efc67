"""POST /api/v1/feedback: true labels and values join predictions by request id, whenever they arrive."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from monitoring.models import DirtyMinute, Feedback
from tests.conftest import bearer, make_user
from tests.monitoring.conftest import T0

URL = "/api/v1/feedback"


def post(user: Any, body: Any) -> Any:
    return Client(**bearer(user)).post(URL, json.dumps(body), content_type="application/json")


def test_feedback_is_stored_marks_its_minute_and_counts_what_it_matched(editor: Any, predict: Any) -> None:
    predict(T0 + timedelta(seconds=30), request_id="a")
    response = post(editor, {"feedback": [{"request_id": "a", "label": 1}, {"request_id": "later", "value": 3.5}]})
    assert response.status_code == 200, response.content
    assert response.json() == {"received": 2, "matched": 1, "pending": 1}
    assert dict(Feedback.objects.values_list("request_id", "label")) == {"a": 1, "later": 3.5}
    assert list(DirtyMinute.objects.values_list("minute", flat=True)) == [T0]


def test_posting_again_replaces_and_never_duplicates(editor: Any, predict: Any) -> None:
    predict(T0, request_id="a")
    for label in (0, 1, 1):
        assert post(editor, [{"request_id": "a", "label": label}]).status_code == 200
    assert list(Feedback.objects.values_list("request_id", "label")) == [("a", 1)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"feedback": []}, "feedback"),
        ({"feedback": [{"label": 1}]}, "feedback[0].request_id"),
        ({"feedback": [{"request_id": "x" * 65, "label": 1}]}, "feedback[0].request_id"),
        ({"feedback": [{"request_id": "a", "label": 1, "value": 2.0}]}, "feedback[0]"),
        ({"feedback": [{"request_id": "a", "label": 1}, {"request_id": "b", "value": "NaN"}]}, "feedback[1].value"),
        ({"feedback": [{"request_id": "a", "label": {"nested": 1}}]}, "feedback[0].label"),
        ({"feedback": [{"request_id": "a", "label": 1, "weight": 2}]}, "feedback[0].weight"),
        ({"feedback": [{"request_id": "a", "value": 10**400}]}, "feedback[0].value"),
        ({"feedback": [{"request_id": "a\u0000", "label": 1}]}, "feedback[0].request_id"),
        ({"feedback": [{"request_id": "a", "label": "x\u0000"}]}, "feedback[0].label"),
        ({"feedback": "nope"}, "feedback"),
    ],
)
def test_bad_feedback_is_a_400_naming_the_item_and_field_and_stores_nothing(editor: Any, body: Any, field: str) -> None:
    response = post(editor, body)
    assert response.status_code == 400 and response.json()["error"]["field"] == field, response.content
    assert not Feedback.objects.exists()


def test_more_than_the_limit_is_refused_naming_it(editor: Any, settings: Any) -> None:
    settings.FEEDBACK_MAX_ITEMS = 3
    response = post(editor, [{"request_id": str(i), "label": 1} for i in range(4)])
    assert response.status_code == 400 and "at most 3 items" in response.json()["error"]["message"]


def test_viewers_and_outsiders_of_the_model_may_not_label_its_predictions(
    viewer: Any, predict: Any, django_user_model: Any, settings: Any
) -> None:
    predict(T0, request_id="a")
    assert post(viewer, [{"request_id": "a", "label": 1}]).status_code == 403  # the role
    settings.TRACKING_DEFAULT_PERMISSION = "READ"
    other = make_user(django_user_model, "otto", "editor")
    response = post(other, [{"request_id": "a", "label": 1}])
    assert response.status_code == 403 and "EDIT" in response.json()["error"]["message"]
    assert not Feedback.objects.exists()
    assert Client().post(URL, "[]", content_type="application/json").status_code == 401
