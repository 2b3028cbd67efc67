"""Metric points without a foreign key constraint to their run, and a trigger that deletes them with it.

PostgreSQL checked the constraint once per inserted point, at commit: a fifth of a 1000-point
log-batch. Its two guarantees are kept another way:
- no point for a missing run: the statements that insert points read and lock the run (FOR KEY
  SHARE) in the same statement, so a run deleted before writes nothing, and one being deleted waits;
- no point outlives its run: this trigger deletes them in the statement that deletes the run, after
  any writer holding the lock has committed (Django's own cascade deletes them first as well; the
  trigger covers the points a writer committed in between, and deletions outside Django).
The trigger deletes the run's latest values and history buckets too, which the same statement
writes: their foreign keys stay, and without it a write committed between Django's cascade and the
run's deletion made the deletion fail on them.
"""

from django.db import migrations, models

POSTGRES_UP = [
    """
CREATE OR REPLACE FUNCTION experiments_run_delete_points() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM experiments_metric WHERE run_id = OLD.run_uuid;
    DELETE FROM experiments_latestmetric WHERE run_id = OLD.run_uuid;
    DELETE FROM experiments_metricbucket WHERE run_id = OLD.run_uuid;
    RETURN OLD;
END
$$
""",
    """
CREATE TRIGGER experiments_run_delete_points AFTER DELETE ON experiments_run
    FOR EACH ROW EXECUTE FUNCTION experiments_run_delete_points()
""",
]
POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS experiments_run_delete_points ON experiments_run",
    "DROP FUNCTION IF EXISTS experiments_run_delete_points()",
]
SQLITE_UP = [
    """
CREATE TRIGGER experiments_run_delete_points AFTER DELETE ON experiments_run FOR EACH ROW
BEGIN
    DELETE FROM experiments_metric WHERE run_id = OLD.run_uuid;
    DELETE FROM experiments_latestmetric WHERE run_id = OLD.run_uuid;
    DELETE FROM experiments_metricbucket WHERE run_id = OLD.run_uuid;
END
"""
]
SQLITE_DOWN = ["DROP TRIGGER IF EXISTS experiments_run_delete_points"]


def _run(sql: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def apply(apps, schema_editor):  # type: ignore[no-untyped-def]
        for statement in sql.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return apply


class Migration(migrations.Migration):
    dependencies = [("experiments", "0007_sweeps")]

    operations = [
        migrations.AlterField(
            model_name="metric",
            name="run",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=models.deletion.CASCADE,
                related_name="metrics",
                to="experiments.run",
            ),
        ),
        migrations.RunPython(
            _run({"postgresql": POSTGRES_UP, "sqlite": SQLITE_UP}),
            _run({"postgresql": POSTGRES_DOWN, "sqlite": SQLITE_DOWN}),
        ),
    ]
