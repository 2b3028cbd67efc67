"""Versions registered at the same moment by many clients get distinct numbers, 1..n, with no gaps."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from django.db import connection

from accounts.services import create_api_token
from experiments.models import Run
from registry import services
from registry.models import ModelVersion, RegistryEvent

CLIENTS = 8
PER_CLIENT = 5


@pytest.mark.django_db(transaction=True)
def test_concurrent_registrations_number_versions_one_to_n(live_server: Any, editor: Any, run: Run) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's row locks (SQLite serializes every write anyway)")
    services.create_registered_model("busy", owner=editor)
    token = create_api_token(editor, "t").secret
    url = f"{live_server.url}/api/2.0/mlflow/model-versions/create"

    def register(client: int) -> list[str]:
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {token}"
            numbers = []
            for i in range(PER_CLIENT):
                payload = {"name": "busy", "source": f"runs:/{run.pk}/model-{client}-{i}"}
                response = session.post(url, json=payload, timeout=30)
                assert response.status_code == 200, response.text
                numbers.append(response.json()["model_version"]["version"])
            return numbers

    with ThreadPoolExecutor(CLIENTS) as pool:
        answered = [n for numbers in pool.map(register, range(CLIENTS)) for n in numbers]

    total = CLIENTS * PER_CLIENT
    assert sorted(int(n) for n in answered) == list(range(1, total + 1))
    assert sorted(ModelVersion.objects.filter(model__name="busy").values_list("version", flat=True)) == list(
        range(1, total + 1)
    )
    assert RegistryEvent.objects.filter(kind=RegistryEvent.Kind.VERSION_CREATED).count() == total
