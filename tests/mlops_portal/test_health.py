from django.test import Client


def test_health_answers_without_login(db: None) -> None:
    response = Client().get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_reports_database_and_broker(db: None) -> None:
    response = Client().get("/ready")
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"] == {"database": "ok", "broker": "ok"}
