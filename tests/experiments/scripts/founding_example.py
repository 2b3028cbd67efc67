"""The founding document's MLflow example (section 14.2.2), verbatim between the markers.

Run as a script against a live portal: MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN come from the
environment. Prints one JSON line with what the test checks.
"""

import json
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
rng = np.random.default_rng(7)
x_train = rng.normal(size=(256, 4)).astype("float32")
y_train = (x_train @ np.array([1.5, -2.0, 0.5, 1.0], dtype="float32") + 0.3).reshape(-1, 1)
x_test = rng.normal(size=(32, 4)).astype("float32")
y_test = (x_test @ np.array([1.5, -2.0, 0.5, 1.0], dtype="float32") + 0.3).reshape(-1, 1)

# --- founding document, verbatim ---
# fmt: off
# Example: Using MLflow to track experiments
import mlflow  # noqa: E402
import mlflow.tensorflow  # noqa: E402
import tensorflow as tf  # noqa: E402

mlflow.start_run()

# Train your model
model = tf.keras.models.Sequential([
    tf.keras.layers.Dense(10, activation='relu'),
    tf.keras.layers.Dense(1)
])
model.compile(optimizer='adam', loss='mse')
model.fit(x_train, y_train, epochs=5)

# Log parameters and metrics
mlflow.log_param("epochs", 5)
mlflow.log_metric("loss", model.evaluate(x_test, y_test))

# Log the model
mlflow.tensorflow.log_model(model, "model")
mlflow.end_run()
# fmt: on
# --- end of the founding document ---

run = mlflow.last_active_run()
expected = model.predict(x_test, verbose=0)
by_run = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
logged = mlflow.last_logged_model()
by_model = mlflow.pyfunc.load_model(f"models:/{logged.model_id}")
# Beyond the founding document: autologging and a pandas dataset as a run input.
import pandas as pd  # noqa: E402

mlflow.tensorflow.autolog()
frame = pd.DataFrame(x_train, columns=["a", "b", "c", "d"]).assign(target=y_train[:, 0])
with mlflow.start_run() as auto_run:
    mlflow.log_input(mlflow.data.from_pandas(frame, name="train-frame", targets="target"), context="training")
    auto_model = tf.keras.models.Sequential([tf.keras.layers.Dense(4, activation="relu"), tf.keras.layers.Dense(1)])
    auto_model.compile(optimizer="adam", loss="mse")
    auto_model.fit(x_train, y_train, epochs=3, validation_split=0.25, verbose=0)
mlflow.tensorflow.autolog(disable=True)

print(
    json.dumps(
        {
            "auto_run_id": auto_run.info.run_id,
            "run_id": run.info.run_id,
            "model_id": logged.model_id,
            "loss": run.data.metrics["loss"],
            "max_diff_runs_uri": float(np.max(np.abs(by_run.predict(x_test) - expected))),
            "max_diff_model_uri": float(np.max(np.abs(by_model.predict(x_test) - expected))),
        }
    )
)
