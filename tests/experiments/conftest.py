"""The real `mlflow` client pointed at a live portal, for the tracking tests that need it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accounts.services import create_api_token


def close_client_connections() -> None:
    """Drop the client's cached HTTP sessions so their keep-alive connections (and the live server's
    request threads serving them) end with the test."""
    from mlflow.utils.request_utils import _cached_get_request_session

    _cached_get_request_session.cache_clear()


@pytest.fixture
def mlflow_client(live_server: Any, editor: Any, store: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An MlflowClient logged in as the editor persona; `store` is each test module's artifact root."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", live_server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", create_api_token(editor, "t").secret)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    mlflow.set_tracking_uri(live_server.url)
    yield mlflow.MlflowClient()
    close_client_connections()
