"""PostgreSQL statistics on (key, value) of params and tags, so the planner knows how many runs a
filter such as `params.lr = '0.01'` keeps. Without them it multiplies the two columns' separate
frequencies, underestimates the matches about fivefold, and sorts every candidate instead of
walking the sort key's index and stopping after a page (10.8 ms -> 5.5-7 ms at 10,000 runs)."""

from django.db import migrations

TABLES = {"param_key_value_stats": "experiments_param", "runtag_key_value_stats": "experiments_runtag"}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, table in TABLES.items():
        schema_editor.execute(f"CREATE STATISTICS IF NOT EXISTS {name} (mcv) ON key, value FROM {table}")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in TABLES:
        schema_editor.execute(f"DROP STATISTICS IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("experiments", "0005_metric_buckets")]

    operations = [migrations.RunPython(create, drop)]
