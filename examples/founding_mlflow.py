"""The founding document's MLflow example (section 14.2.2) as a script, on synthetic regression data.

Run it on your machine against the portal (MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN set), or as a
job from the portal ("Run a script" on the Experiments page), which sets MLFLOW_RUN_ID so that
`mlflow.start_run()` logs into the job's run.
"""

import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
rng = np.random.default_rng(7)
weights = np.array([1.5, -2.0, 0.5, 1.0], dtype="float32")
x_train = rng.normal(size=(512, 4)).astype("float32")
y_train = (x_train @ weights + 0.3).reshape(-1, 1)
x_test = rng.normal(size=(64, 4)).astype("float32")
y_test = (x_test @ weights + 0.3).reshape(-1, 1)

# --- founding document, as written (but for `epochs`, taken from the command line) ---
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
model.fit(x_train, y_train, epochs=epochs, verbose=2)

# Log parameters and metrics
mlflow.log_param("epochs", epochs)
mlflow.log_metric("loss", model.evaluate(x_test, y_test))

# Log the model
mlflow.tensorflow.log_model(model, "model")
mlflow.end_run()
# fmt: on
