"""The prediction log has no foreign key constraints (migration deployments 0004): no row may outlive its
deployment or revision, and none may be written for a revision that is gone, also when a deletion and a
flush race."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from deployments.models import Deployment, DeploymentRevision, PredictionLog
from deployments.server import predlog
from deployments.server.predlog import PredictionLogger
from tests.services import in_thread

pg_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")


def rows(revision: DeploymentRevision, prefix: str, count: int = 20) -> list[dict[str, Any]]:
    return [
        {
            "time": timezone.now(),
            "request_id": f"{prefix}{i}",
            "deployment_id": revision.deployment_id,
            "revision_id": revision.pk,
            "model_version": 1,
            "latency_ms": 1.0,
            "status": 200,
        }
        for i in range(count)
    ]


def second_revision(revision: DeploymentRevision) -> DeploymentRevision:
    return DeploymentRevision.objects.create(deployment=revision.deployment, model_version=revision.model_version)


@pytest.mark.django_db
def test_the_log_has_no_foreign_key_constraints_and_one_index_on_the_request_id() -> None:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, PredictionLog._meta.db_table)
    assert not [name for name, c in constraints.items() if c["foreign_key"]]
    on_request_id = [name for name, c in constraints.items() if c["columns"] == ["request_id"]]
    assert on_request_id == ["prediction_request_id_idx"], on_request_id  # no LIKE twin on PostgreSQL


@pytest.mark.django_db
def test_deleting_a_deployment_or_a_revision_deletes_its_rows_through_django_and_through_plain_sql(
    revision: DeploymentRevision,
) -> None:
    other = second_revision(revision)
    with transaction.atomic():  # the writer's own path
        predlog._insert(rows(revision, "a") + rows(other, "b"))
    assert PredictionLog.objects.count() == 40
    with connection.cursor() as cursor:  # outside Django's cascade: the trigger
        cursor.execute(f"DELETE FROM {DeploymentRevision._meta.db_table} WHERE id = %s", [other.pk])  # noqa: S608
    assert sorted(set(PredictionLog.objects.values_list("revision_id", flat=True))) == [revision.pk]
    Deployment.objects.filter(pk=revision.deployment_id).delete()
    assert PredictionLog.objects.count() == 0


@pytest.mark.django_db
def test_the_delete_triggers_exist() -> None:
    # SQLite drops a table's triggers when Django rebuilds it: a later migration must create them again.
    expected = {
        "deployments_deployment_delete_logs",
        "deployments_revision_delete_logs",
        "experiments_run_delete_points",
    }
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        names = {row[0] for row in cursor.fetchall()}
    assert expected <= names, expected - names


@pytest.mark.django_db
def test_deleting_a_deployment_in_plain_sql_deletes_rows_that_name_it(
    revision: DeploymentRevision, editor: Any
) -> None:
    # A row naming a deployment its revision does not belong to cannot come from the writer; written
    # through the ORM, it is the one way to see the deployment's own trigger at work (deleting a
    # deployment in SQL means deleting its revisions first, whose trigger would take their rows).
    other = Deployment.objects.create(name="other", registered_model=revision.deployment.registered_model, selector="1")
    PredictionLog.objects.create(**{**rows(revision, "named")[0], "deployment_id": other.pk})
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Deployment._meta.db_table} WHERE id = %s", [other.pk])  # noqa: S608
    assert not PredictionLog.objects.filter(request_id="named0").exists()


@pytest.mark.django_db
def test_rows_for_a_revision_deleted_before_the_flush_are_left_out_and_counted(
    revision: DeploymentRevision,
) -> None:
    gone = second_revision(revision)
    logger = PredictionLogger(60)
    for row in rows(revision, "kept", 3) + rows(gone, "gone", 2):
        logger.log(**row)
    mismatched = {**rows(revision, "wrong-deployment", 1)[0], "deployment_id": revision.deployment_id + 999}
    logger.log(**mismatched)
    gone.delete()
    assert logger.flush() == 3
    assert (logger.written, logger.refused, logger.pending()) == (3, 3, 0)
    assert sorted(PredictionLog.objects.values_list("request_id", flat=True)) == ["kept0", "kept1", "kept2"]


@pg_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("deleted", ["deployment", "revision"])
def test_a_deletion_waits_for_rows_being_written_and_takes_them_along(
    revision: DeploymentRevision, deleted: str
) -> None:
    written, release = threading.Event(), threading.Event()

    def write() -> list[dict[str, Any]]:
        with transaction.atomic():  # the flush's transaction: its locks hold until this commits
            orphans = predlog._insert(rows(revision, "r"))
            written.set()
            assert release.wait(30)
        return orphans

    writer, writer_out = in_thread(write)
    assert written.wait(30), writer_out
    target = Deployment.objects.filter(pk=revision.deployment_id) if deleted == "deployment" else (
        DeploymentRevision.objects.filter(pk=revision.pk)
    )  # fmt: skip
    deleter, deleter_out = in_thread(target.delete)
    time.sleep(1)
    assert deleter.is_alive(), "the deletion did not wait for the rows being written"
    release.set()
    writer.join(30)
    deleter.join(30)
    assert "error" not in writer_out and "error" not in deleter_out, (writer_out, deleter_out)
    assert writer_out["result"] == []
    assert PredictionLog.objects.filter(revision_id=revision.pk).count() == 0, "rows outlived their revision"


@pg_only
@pytest.mark.django_db(transaction=True)
def test_rows_flushed_while_their_deployment_is_being_deleted_are_left_out(revision: DeploymentRevision) -> None:
    deleted, release = threading.Event(), threading.Event()

    def delete() -> None:
        with transaction.atomic():
            Deployment.objects.filter(pk=revision.deployment_id).delete()
            deleted.set()
            assert release.wait(30)

    deleter, deleter_out = in_thread(delete)
    assert deleted.wait(30), deleter_out
    logger = PredictionLogger(60)
    for row in rows(revision, "late", 5):
        logger.log(**row)
    writer, writer_out = in_thread(logger.flush)
    time.sleep(1)
    assert writer.is_alive(), "the flush did not wait for the deletion"
    release.set()
    deleter.join(30)
    writer.join(30)
    assert "error" not in deleter_out and "error" not in writer_out, (deleter_out, writer_out)
    assert (writer_out["result"], logger.refused, logger.pending()) == (0, 5, 0)
    assert PredictionLog.objects.count() == 0, "rows were written for a deleted deployment"
