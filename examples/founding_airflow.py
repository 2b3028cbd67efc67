"""The founding document's Airflow DAG (section 14.2.3), one to one, as a portal pipeline.

    python manage.py pipeline_apply examples/founding_airflow.py

Airflow's three PythonOperators become three `function` steps calling the same three functions (listed in
PIPELINE_FUNCTIONS), `preprocess_task >> train_task >> deploy_task` the same order, and
`schedule_interval='@daily'` a schedule kept in the database and run by beat.
"""

from pipelines.dsl import function, pipeline


def preprocess() -> dict[str, str]:
    # Preprocessing code
    print("Data preprocessed")
    return {"message": "Data preprocessed"}


def train() -> dict[str, str]:
    # Training code
    print("Model trained")
    return {"message": "Model trained"}


def deploy() -> dict[str, str]:
    # Deployment code
    print("Model deployed")
    return {"message": "Model deployed"}


@pipeline(name="ml_pipeline", description="A simple ML pipeline", schedule="@daily")
def ml_pipeline() -> None:
    preprocess_task = function("preprocess", "examples.founding_airflow.preprocess")
    train_task = function("train", "examples.founding_airflow.train")
    deploy_task = function("deploy", "examples.founding_airflow.deploy")
    preprocess_task >> train_task >> deploy_task
