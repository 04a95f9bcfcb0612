"""Training losses over forecasts shaped ``[B, H, Q]`` against targets ``[B, H]``."""

from __future__ import annotations

import keras
from keras import ops

from fusioncast.layers import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class PinballLoss(keras.losses.Loss):
    """Mean pinball (quantile) loss over horizon steps and quantiles."""

    def __init__(self, quantiles, name: str = "pinball", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.quantiles = [float(q) for q in quantiles]

    def call(self, y_true, y_pred):
        error = ops.expand_dims(y_true, -1) - y_pred
        q = ops.convert_to_tensor(self.quantiles, dtype=y_pred.dtype)
        return ops.mean(ops.maximum(q * error, (q - 1.0) * error), axis=(-2, -1))

    def get_config(self) -> dict:
        return {**super().get_config(), "quantiles": self.quantiles}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PointLoss(keras.losses.Loss):
    """MSE or MAE of the single (median) output channel."""

    def __init__(self, kind: str = "mse", name: str | None = None, **kwargs) -> None:
        super().__init__(name=name or kind, **kwargs)
        self.kind = kind

    def call(self, y_true, y_pred):
        error = y_true - y_pred[..., 0]
        penalty = ops.square(error) if self.kind == "mse" else ops.abs(error)
        return ops.mean(penalty, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "kind": self.kind}
