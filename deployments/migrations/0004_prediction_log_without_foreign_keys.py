"""Less work for the database on each flush of the prediction log.

1. No foreign key constraints on the deployment and the revision. PostgreSQL checked both for every row
   at commit: a third of what the database spent on a flush of 50 rows (1.2 -> 0.83 ms of backend CPU,
   docs/performance.md). Their guarantees are kept another way:
   - no row for a missing revision or deployment: the writer locks the batch's revisions (FOR KEY
     SHARE; a revision's own foreign key keeps its deployment) in the transaction that writes the rows,
     and leaves out the rows whose revision is gone or belongs to another deployment
     (deployments/server/predlog.py); a deletion in progress waits for the write;
   - no row outlives its deployment or revision: these triggers delete the rows in the statement that
     deletes either, after any writer holding the lock has committed (Django's cascade deletes them
     first as well; the triggers cover rows committed in between, and deletions outside Django).
2. request_id keeps its index under a name of its own and loses the `varchar_pattern_ops` twin that
   `db_index=True` adds on PostgreSQL for LIKE, which no query uses. On PostgreSQL the index is renamed,
   not rebuilt, so a long log is not locked while this migrates.

Going back is not cheap on a long log: adding the foreign keys back checks every row, and the LIKE index
is built again, both while the table is locked.

SQLite drops a table's triggers when Django rebuilds the table (it does for many field changes): a later
migration that alters deployments_deployment, deployments_deploymentrevision or deployments_predictionlog
on SQLite must create these triggers again. tests/deployments/test_prediction_log_integrity.py checks
that they exist.
"""

from django.db import migrations, models

TABLE = "deployments_predictionlog"
NEW_INDEX = "prediction_request_id_idx"

POSTGRES_UP = [
    """
CREATE OR REPLACE FUNCTION deployments_delete_prediction_logs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'deployments_deployment' THEN
        DELETE FROM deployments_predictionlog WHERE deployment_id = OLD.id;
    ELSE
        DELETE FROM deployments_predictionlog WHERE revision_id = OLD.id;
    END IF;
    RETURN OLD;
END
$$
""",
    """
CREATE TRIGGER deployments_deployment_delete_logs AFTER DELETE ON deployments_deployment
    FOR EACH ROW EXECUTE FUNCTION deployments_delete_prediction_logs()
""",
    """
CREATE TRIGGER deployments_revision_delete_logs AFTER DELETE ON deployments_deploymentrevision
    FOR EACH ROW EXECUTE FUNCTION deployments_delete_prediction_logs()
""",
]
POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS deployments_deployment_delete_logs ON deployments_deployment",
    "DROP TRIGGER IF EXISTS deployments_revision_delete_logs ON deployments_deploymentrevision",
    "DROP FUNCTION IF EXISTS deployments_delete_prediction_logs()",
]
SQLITE_UP = [
    """
CREATE TRIGGER deployments_deployment_delete_logs AFTER DELETE ON deployments_deployment FOR EACH ROW
BEGIN
    DELETE FROM deployments_predictionlog WHERE deployment_id = OLD.id;
END
""",
    """
CREATE TRIGGER deployments_revision_delete_logs AFTER DELETE ON deployments_deploymentrevision FOR EACH ROW
BEGIN
    DELETE FROM deployments_predictionlog WHERE revision_id = OLD.id;
END
""",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS deployments_deployment_delete_logs",
    "DROP TRIGGER IF EXISTS deployments_revision_delete_logs",
]


def _run(sql: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def apply(apps, schema_editor):  # type: ignore[no-untyped-def]
        for statement in sql.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return apply


def _old_index(schema_editor) -> str:  # type: ignore[no-untyped-def]
    """The name `db_index=True` gave the request_id index (its LIKE twin adds `_like`)."""
    return schema_editor._create_index_name(TABLE, ["request_id"], suffix="")


def request_id_index_forwards(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    old, quote = _old_index(schema_editor), schema_editor.quote_name
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {quote(old + '_like')}")
        schema_editor.execute(f"ALTER INDEX IF EXISTS {quote(old)} RENAME TO {quote(NEW_INDEX)}")
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {quote(NEW_INDEX)} ON {quote(TABLE)} (request_id)")
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {quote(old)}")
    schema_editor.execute(f"CREATE INDEX {quote(NEW_INDEX)} ON {quote(TABLE)} (request_id)")


def request_id_index_backwards(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    old, quote = _old_index(schema_editor), schema_editor.quote_name
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER INDEX {quote(NEW_INDEX)} RENAME TO {quote(old)}")
        schema_editor.execute(f"CREATE INDEX {quote(old + '_like')} ON {quote(TABLE)} (request_id varchar_pattern_ops)")
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {quote(NEW_INDEX)}")
    schema_editor.execute(f"CREATE INDEX {quote(old)} ON {quote(TABLE)} (request_id)")


class Migration(migrations.Migration):
    dependencies = [("deployments", "0003_prediction_log_fewer_indexes")]

    operations = [
        migrations.AlterField(
            model_name="predictionlog",
            name="deployment",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=models.deletion.CASCADE,
                related_name="+",
                to="deployments.deployment",
            ),
        ),
        migrations.AlterField(
            model_name="predictionlog",
            name="revision",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=models.deletion.CASCADE,
                related_name="+",
                to="deployments.deploymentrevision",
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="predictionlog", name="request_id", field=models.CharField(max_length=64)
                ),
                migrations.AddIndex(
                    model_name="predictionlog", index=models.Index(fields=["request_id"], name=NEW_INDEX)
                ),
            ],
            database_operations=[migrations.RunPython(request_id_index_forwards, request_id_index_backwards)],
        ),
        migrations.RunPython(
            _run({"postgresql": POSTGRES_UP, "sqlite": SQLITE_UP}),
            _run({"postgresql": POSTGRES_DOWN, "sqlite": SQLITE_DOWN}),
        ),
    ]
