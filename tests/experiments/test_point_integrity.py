"""Metric points have no foreign key constraint to their run (migration 0008): no point may outlive its
run, and none may be written for a run that is gone, also when a deletion and a write race."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection, transaction

from experiments import services
from experiments.mlflow_api.common import MlflowError
from experiments.mlflow_api.lookups import RunGuard
from experiments.models import Metric, Run, RunTag
from experiments.services import MetricPoint
from tests.services import in_thread

POINTS = [MetricPoint(key=f"k{k}", value=0.5, timestamp=1, step=s) for k in range(3) for s in range(50)]


def make_run(editor: Any, name: str = "points") -> Run:
    experiment = services.create_experiment(name, owner=editor)
    return services.create_run(experiment, user_id="erin", start_time=None, run_name="r", tags=[])


@pytest.mark.django_db
def test_the_metric_table_has_no_foreign_key_constraint() -> None:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Metric._meta.db_table)
    assert not [name for name, c in constraints.items() if c["foreign_key"]]


@pytest.mark.django_db
def test_deleting_a_run_deletes_its_points_through_django_and_through_plain_sql(editor: Any) -> None:
    first, second, kept = make_run(editor, "a"), make_run(editor, "b"), make_run(editor, "c")
    for run in (first, second, kept):
        services.log_metrics(run, POINTS)
    first.delete()
    # Outside Django's cascade, the trigger: the run's other rows (its tags) are deleted first, as a
    # hand-written deletion would have to, since their foreign keys stay.
    RunTag.objects.filter(run=second).delete()
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Run._meta.db_table} WHERE run_uuid = %s", [second.pk])  # noqa: S608
    assert Metric.objects.filter(run_id__in=[first.pk, second.pk]).count() == 0
    assert Metric.objects.filter(run_id=kept.pk).count() == len(POINTS)


@pytest.mark.django_db
def test_points_for_a_run_deleted_after_it_was_read_are_refused(editor: Any) -> None:
    run = make_run(editor)
    Run.objects.filter(pk=run.pk).delete()
    with pytest.raises(MlflowError) as caught:
        services.log_metrics(run, POINTS)
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert Metric.objects.count() == 0


pg_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")


@pg_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("guarded", [False, True])
def test_a_deletion_waits_for_points_being_written_and_takes_them_along(editor: Any, guarded: bool) -> None:
    run = make_run(editor)
    written, release = threading.Event(), threading.Event()

    def write() -> None:
        with transaction.atomic():  # the points' statement holds its lock until this commits
            if guarded:
                services.log_metrics_guarded(RunGuard(editor, run.pk, "EDIT"), POINTS)
            else:
                services.log_metrics(run, POINTS)
            written.set()
            assert release.wait(30)

    writer, writer_out = in_thread(write)
    assert written.wait(30), writer_out
    deleter, deleter_out = in_thread(lambda: Run.objects.filter(pk=run.pk).delete())
    time.sleep(1)
    assert deleter.is_alive(), "the deletion did not wait for the points being written"
    release.set()
    writer.join(30)
    deleter.join(30)
    assert "error" not in writer_out and "error" not in deleter_out, (writer_out, deleter_out)
    assert not Run.objects.filter(pk=run.pk).exists()
    assert Metric.objects.filter(run_id=run.pk).count() == 0, "points outlived their run"


@pg_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("guarded", [False, True])
def test_points_written_while_their_run_is_being_deleted_are_refused(editor: Any, guarded: bool) -> None:
    run = make_run(editor)
    deleted, release = threading.Event(), threading.Event()

    def delete() -> None:
        with transaction.atomic():
            Run.objects.filter(pk=run.pk).delete()
            deleted.set()
            assert release.wait(30)

    deleter, deleter_out = in_thread(delete)
    assert deleted.wait(30), deleter_out

    def write() -> None:
        if guarded:
            services.log_metrics_guarded(RunGuard(editor, run.pk, "EDIT"), POINTS)
        else:
            services.log_metrics(run, POINTS)

    writer, writer_out = in_thread(write)
    time.sleep(1)
    assert writer.is_alive(), "the points did not wait for the deletion"
    release.set()
    deleter.join(30)
    writer.join(30)
    assert "error" not in deleter_out, deleter_out
    assert isinstance(writer_out.get("error"), MlflowError), writer_out
    assert writer_out["error"].error_code == "RESOURCE_DOES_NOT_EXIST"
    assert Metric.objects.filter(run_id=run.pk).count() == 0, "points were written for a deleted run"
