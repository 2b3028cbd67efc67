from django.db import migrations


def create_default(apps, schema_editor):
    Experiment = apps.get_model("experiments", "Experiment")
    if not Experiment.objects.filter(pk=0).exists():
        Experiment.objects.create(id=0, name="Default", artifact_location="mlflow-artifacts:/0")


class Migration(migrations.Migration):
    """MLflow clients assume experiment "0", named "Default", always exists."""

    dependencies = [("experiments", "0001_initial")]
    operations = [migrations.RunPython(create_default, migrations.RunPython.noop)]
