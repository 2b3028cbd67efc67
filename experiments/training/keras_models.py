"""Built-in trainers: Keras MLPs and linear models for tabular classification and regression.

The preprocessing is part of the model (a Normalization layer per number with the training mean and
variance, a one-hot StringLookup per category), so the saved model takes the raw columns by name: the
model server, `mlflow.pyfunc` and the rollout gates feed it the dataset's own columns. Nothing in it is a
lambda, so it loads in Keras's safe mode.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from experiments.training import Trainer
from experiments.training.data import TrainingData


class MLPParams(serializers.Serializer):
    hidden_units = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=4096), min_length=0, max_length=8, default=[64, 32]
    )
    dropout = serializers.FloatField(min_value=0.0, max_value=0.9, default=0.1)
    learning_rate = serializers.FloatField(min_value=1e-6, max_value=1.0, default=0.001)
    epochs = serializers.IntegerField(min_value=1, max_value=1000, default=20)
    batch_size = serializers.IntegerField(min_value=1, max_value=65_536, default=32)
    early_stopping_patience = serializers.IntegerField(min_value=0, max_value=100, default=5, help_text="0: off")


class ClassifierParams(MLPParams):
    class_weight = serializers.ChoiceField(choices=["none", "balanced"], default="none")


class LinearParams(serializers.Serializer):
    learning_rate = serializers.FloatField(min_value=1e-6, max_value=1.0, default=0.01)
    epochs = serializers.IntegerField(min_value=1, max_value=1000, default=20)
    batch_size = serializers.IntegerField(min_value=1, max_value=65_536, default=32)
    l2 = serializers.FloatField(min_value=0.0, max_value=10.0, default=0.0)
    early_stopping_patience = serializers.IntegerField(min_value=0, max_value=100, default=5, help_text="0: off")


def _encoded_inputs(data: TrainingData) -> tuple[dict[str, Any], Any]:
    import keras

    inputs: dict[str, Any] = {}
    encoded = []
    for column in data.columns:
        if column.kind == "numeric":
            inputs[column.name] = keras.Input((1,), name=column.name, dtype="float32")
            norm = keras.layers.Normalization(mean=column.mean, variance=column.variance, name=f"norm_{column.name}")
            encoded.append(norm(inputs[column.name]))
        else:
            inputs[column.name] = keras.Input((1,), name=column.name, dtype="string")
            lookup = keras.layers.StringLookup(
                vocabulary=column.vocabulary, output_mode="one_hot", name=f"onehot_{column.name}"
            )
            encoded.append(lookup(inputs[column.name]))
    features = encoded[0] if len(encoded) == 1 else keras.layers.Concatenate(name="features")(encoded)
    return inputs, features


def _head(data: TrainingData, features: Any, l2: float = 0.0) -> Any:
    import keras

    regularizer = keras.regularizers.L2(l2) if l2 else None
    if data.task == "regression":
        return keras.layers.Dense(1, name="prediction", kernel_regularizer=regularizer)(features)
    if len(data.classes) == 2:
        return keras.layers.Dense(1, activation="sigmoid", name="prediction", kernel_regularizer=regularizer)(features)
    return keras.layers.Dense(len(data.classes), activation="softmax", name="prediction",
                              kernel_regularizer=regularizer)(features)  # fmt: skip


def _compile(model: Any, data: TrainingData, learning_rate: float) -> Any:
    import keras

    if data.task == "regression":
        model.compile(keras.optimizers.Adam(learning_rate), "mse", metrics=["mae"])
    elif len(data.classes) == 2:
        model.compile(keras.optimizers.Adam(learning_rate), "binary_crossentropy", metrics=["accuracy"])
    else:
        model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class MLPClassifier(Trainer):
    name = "keras_mlp_classifier"
    label = "Keras MLP classifier"
    task = "classification"
    Params = ClassifierParams

    def build(self, data: TrainingData, params: dict[str, Any]) -> Any:
        import keras

        inputs, x = _encoded_inputs(data)
        for i, units in enumerate(params["hidden_units"]):
            x = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(x)
            if params["dropout"]:
                x = keras.layers.Dropout(params["dropout"], name=f"dropout_{i}")(x)
        return _compile(keras.Model(inputs, _head(data, x), name=self.name), data, params["learning_rate"])


class MLPRegressor(MLPClassifier):
    name = "keras_mlp_regressor"
    label = "Keras MLP regressor"
    task = "regression"
    Params = MLPParams


class LinearClassifier(Trainer):
    """Logistic (or softmax) regression on the encoded columns: a fast, explainable baseline."""

    name = "keras_linear_classifier"
    label = "Keras linear classifier (logistic regression)"
    task = "classification"
    Params = LinearParams

    def build(self, data: TrainingData, params: dict[str, Any]) -> Any:
        import keras

        inputs, x = _encoded_inputs(data)
        return _compile(
            keras.Model(inputs, _head(data, x, params["l2"]), name=self.name), data, params["learning_rate"]
        )


class LinearRegressor(LinearClassifier):
    name = "keras_linear_regressor"
    label = "Keras linear regressor"
    task = "regression"
