"""Custom Keras layers of the forecasting model: serialisable, mask-aware, backend-agnostic.

Every layer here uses only ``keras.ops``, stores its constructor arguments, returns them from
``get_config`` (all but the seed of its initial weights, which a loaded model does not need) and
is registered, so a saved model loads with ``safe_mode=True``.
"""

from __future__ import annotations

import random

import keras
from keras import ops

from fusioncast.tokenize import BOS, PAD

PACKAGE = "fusioncast"


class Seeds:
    """Seeds of the model's random initial weights and dropout masks, drawn in build order from
    one seed. Keras draws an unseeded layer's seed from Python's global ``random``, which other
    threads of a worker process (Dask's, Prefect's) draw from too: the same training seed would
    build another model there."""

    def __init__(self, seed: int | None) -> None:
        self._draw = None if seed is None else random.Random(seed)

    def __call__(self) -> int | None:
        return None if self._draw is None else self._draw.randint(1, 2**30)

    def uniform(self) -> keras.initializers.Initializer:  # Keras's default for embeddings
        return keras.initializers.RandomUniform(-0.05, 0.05, seed=self())

    def glorot(self) -> keras.initializers.Initializer:  # ... for kernels
        return keras.initializers.GlorotUniform(seed=self())

    def orthogonal(self) -> keras.initializers.Initializer:  # ... for recurrent kernels
        return keras.initializers.Orthogonal(seed=self())


@keras.saving.register_keras_serializable(package=PACKAGE)
class TokenAndAgeEmbedding(keras.layers.Layer):
    """Sum of a token embedding and an embedding of the token's age (steps before the origin).

    Inputs: ``[tokens, age]``, both int ``[B, T]``. Output: ``[B, T, output_dim]`` with mask
    ``tokens != 0`` (padding), which the following LSTM and attention respect.
    """

    def __init__(
        self, vocabulary_size: int, max_age: int, output_dim: int, seed: int | None = None, **kwargs
    ) -> None:
        """``seed``: of the initial embeddings (see :class:`Seeds`)."""
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.max_age = max_age
        self.output_dim = output_dim
        seeds = Seeds(seed)
        self.token_embedding = keras.layers.Embedding(
            vocabulary_size, output_dim, embeddings_initializer=seeds.uniform(), name="token"
        )
        self.age_embedding = keras.layers.Embedding(
            max_age + 1, output_dim, embeddings_initializer=seeds.uniform(), name="age"
        )

    def build(self, input_shape) -> None:
        tokens_shape, age_shape = input_shape
        self.token_embedding.build(tokens_shape)
        self.age_embedding.build(age_shape)
        self.built = True

    def call(self, inputs):
        tokens, age = inputs
        age = ops.clip(age, 0, self.max_age)
        return self.token_embedding(tokens) + self.age_embedding(age)

    def compute_mask(self, inputs, mask=None):
        tokens, _ = inputs
        return ops.not_equal(tokens, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape[0], self.output_dim)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "max_age": self.max_age,
            "output_dim": self.output_dim,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class ProjectionAndAgeEmbedding(keras.layers.Layer):
    """Trainable projection of frozen per-step text vectors plus an embedding of the step's age.

    Inputs: ``[vectors [B, L, D], age [B, L]]`` (age: steps before the origin, ``max_age`` for a
    step without text). Output: ``[B, L, output_dim]`` with mask ``age < max_age``, which the
    attention pooling respects.
    """

    def __init__(self, max_age: int, output_dim: int, seed: int | None = None, **kwargs) -> None:
        """``seed``: of the initial weights (see :class:`Seeds`)."""
        super().__init__(**kwargs)
        self.max_age = max_age
        self.output_dim = output_dim
        seeds = Seeds(seed)
        self.projection = keras.layers.Dense(
            output_dim, kernel_initializer=seeds.glorot(), name="projection"
        )
        self.age_embedding = keras.layers.Embedding(
            max_age + 1, output_dim, embeddings_initializer=seeds.uniform(), name="age"
        )

    def build(self, input_shape) -> None:
        vectors_shape, age_shape = input_shape
        self.projection.build(vectors_shape)
        self.age_embedding.build(age_shape)
        self.built = True

    def call(self, inputs):
        vectors, age = inputs
        age = ops.clip(age, 0, self.max_age)
        return self.projection(vectors) + self.age_embedding(age)

    def compute_mask(self, inputs, mask=None):
        _, age = inputs
        return ops.less(age, self.max_age)

    def compute_output_shape(self, input_shape):
        return (*input_shape[1], self.output_dim)

    def get_config(self) -> dict:
        return {**super().get_config(), "max_age": self.max_age, "output_dim": self.output_dim}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedAttentionPooling(keras.layers.Layer):
    """Additive attention pooling over time that gives masked (padding) steps exactly zero weight.

    Input: ``[B, T, D]`` with a boolean mask ``[B, T]``. Outputs: the context ``[B, D]`` and the
    attention weights ``[B, T]`` (each row sums to 1 over unmasked steps).
    """

    def __init__(self, units: int, seed: int | None = None, **kwargs) -> None:
        """``seed``: of the initial weights (see :class:`Seeds`)."""
        super().__init__(**kwargs)
        self.units = units
        self.supports_masking = True
        seeds = Seeds(seed)
        self._initializers = (seeds.glorot(), seeds.glorot())

    def build(self, input_shape) -> None:
        dim = input_shape[-1]
        projection, score = self._initializers
        self.projection = self.add_weight(
            shape=(dim, self.units), initializer=projection, name="projection"
        )
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")
        self.score = self.add_weight(shape=(self.units, 1), initializer=score, name="score")
        self.built = True

    def call(self, inputs, mask=None):
        hidden = ops.tanh(ops.matmul(inputs, self.projection) + self.bias)
        scores = ops.squeeze(ops.matmul(hidden, self.score), axis=-1)
        if mask is None:
            weights = ops.softmax(scores, axis=-1)
        else:
            mask = ops.cast(mask, scores.dtype)
            scores = scores + (1.0 - mask) * -1e9
            weights = ops.softmax(scores, axis=-1) * mask
            weights = weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1e-12)
        context = ops.sum(inputs * ops.expand_dims(weights, -1), axis=1)
        return context, weights

    def compute_mask(self, inputs, mask=None):
        return [None, None]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1]), (input_shape[0], input_shape[1])

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TextPresenceGate(keras.layers.Layer):
    """Zeroes a text branch's contribution ``[B, H, Q]`` for every window without a word.

    Inputs: ``[contribution [B, H, Q], tokens [B, T]]``. Padding and the begin marker are not
    words; an out-of-vocabulary word is.
    """

    def call(self, inputs):
        contribution, tokens = inputs
        words = ops.logical_and(ops.not_equal(tokens, PAD), ops.not_equal(tokens, BOS))
        present = ops.cast(ops.any(words, axis=-1), contribution.dtype)
        return contribution * ops.reshape(present, (-1, 1, 1))

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package=PACKAGE)
class StepPresenceGate(keras.layers.Layer):
    """:class:`TextPresenceGate` for per-step text vectors: zeroes a branch's contribution
    ``[B, H, Q]`` for every window none of whose steps has text.

    Inputs: ``[contribution [B, H, Q], age [B, L]]``; a step without text has age ``max_age``.
    """

    def __init__(self, max_age: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_age = max_age

    def call(self, inputs):
        contribution, age = inputs
        present = ops.cast(ops.any(ops.less(age, self.max_age), axis=-1), contribution.dtype)
        return contribution * ops.reshape(present, (-1, 1, 1))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self) -> dict:
        return {**super().get_config(), "max_age": self.max_age}


@keras.saving.register_keras_serializable(package=PACKAGE)
class WindowNormalization(keras.layers.Layer):
    """Per-window normalisation: each channel centred on its last value and divided by its spread.

    Input: ``[B, L, F]``. Outputs: normalised ``[B, L, F]``, and the target channel's (channel 0)
    location ``[B, 1]`` and scale ``[B, 1]`` for :class:`ForecastDenormalization`. The spread is
    ``sqrt(var + floor**2)``, so a flat window does not divide by zero.
    """

    def __init__(self, floor: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.floor = floor

    def call(self, inputs):
        location = inputs[:, -1:, :]
        spread = ops.sqrt(ops.var(inputs, axis=1, keepdims=True) + self.floor**2)
        normalised = (inputs - location) / spread
        return normalised, location[:, :, 0], spread[:, :, 0]

    def compute_output_shape(self, input_shape):
        return input_shape, (input_shape[0], 1), (input_shape[0], 1)

    def get_config(self) -> dict:
        return {**super().get_config(), "floor": self.floor}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LinearSkip(keras.layers.Layer):
    """Linear forecasts from the target history, added to the median forecast in window units.

    Inputs: ``[numeric [B, L, F], location [B, 1], scale [B, 1]]`` (the scaled history, channel 0
    the target, and the window's location, its last value, and spread). Two linear maps of the
    target history ``x``: a change from the last value, ``(x - last) @ kernel + bias`` (a ridge on
    the lookback minus its last value), and a level, ``x @ level_kernel + level_bias`` (a ridge on
    the lookback, which can revert to the mean). The output mixes them,
    ``(1 - level_share) * change + level_share * (level - last)``, in window units (divided by the
    spread), zero in every channel but the median. ``level_share`` is set with the weights (see
    :func:`fusioncast.training.fit_linear_skip`), never trained. Zero weights and share: the last
    value.
    """

    def __init__(self, horizon: int, n_outputs: int = 1, median_index: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.horizon = horizon
        self.n_outputs = n_outputs
        self.median_index = median_index

    def build(self, input_shape) -> None:
        lookback = input_shape[0][1]
        shape = (lookback, self.horizon)
        self.kernel = self.add_weight(shape=shape, initializer="zeros", name="kernel")
        self.bias = self.add_weight(shape=(self.horizon,), initializer="zeros", name="bias")
        self.level_kernel = self.add_weight(shape=shape, initializer="zeros", name="level_kernel")
        self.level_bias = self.add_weight(
            shape=(self.horizon,), initializer="zeros", name="level_bias"
        )
        self.level_share = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="level_share"
        )
        self.built = True

    def call(self, inputs):
        numeric, location, scale = inputs
        history = numeric[:, :, 0]
        relative = ops.matmul(history - location, self.kernel) + self.bias
        level = ops.matmul(history, self.level_kernel) + self.level_bias - location
        linear = ((1.0 - self.level_share) * relative + self.level_share * level) / scale
        selector = ops.one_hot(self.median_index, self.n_outputs, dtype=linear.dtype)
        return ops.expand_dims(linear, -1) * selector

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.horizon, self.n_outputs)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "horizon": self.horizon,
            "n_outputs": self.n_outputs,
            "median_index": self.median_index,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class PeerMix(keras.layers.Layer):
    """A fixed mix of the ridge skip and forecasts made outside the network (the statistical
    peers), added to the output in window units.

    Inputs: ``[linear [B, H, Q], peers [B, H, K], location [B, 1], scale [B, 1]]`` (the
    :class:`LinearSkip` output, the peers' forecasts on the scaled target, the window's location
    and spread). Output ``[B, H, Q]``: ``shares[0] * linear`` plus, in the median channel,
    ``sum_k shares[k + 1] * (peers_k - location) / scale``. ``shares`` is set with the weights
    (see :func:`fusioncast.training.fit_skip`), never trained. Zero shares: the last value.
    """

    def __init__(self, n_peers: int, n_outputs: int = 1, median_index: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_peers = n_peers
        self.n_outputs = n_outputs
        self.median_index = median_index

    def build(self, input_shape) -> None:
        self.shares = self.add_weight(
            shape=(self.n_peers + 1,), initializer="zeros", trainable=False, name="shares"
        )
        self.built = True

    def call(self, inputs):
        linear, peers, location, scale = inputs
        relative = (peers - ops.expand_dims(location, -1)) / ops.expand_dims(scale, -1)
        mixed = ops.sum(relative * self.shares[1:], axis=-1)
        selector = ops.one_hot(self.median_index, self.n_outputs, dtype=mixed.dtype)
        return self.shares[0] * linear + ops.expand_dims(mixed, -1) * selector

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "n_peers": self.n_peers,
            "n_outputs": self.n_outputs,
            "median_index": self.median_index,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class MonotoneQuantiles(keras.layers.Layer):
    """Turns raw outputs ``[B, H, Q]`` into quantiles that never cross.

    The median channel is kept; each higher quantile adds a softplus step to the one below it and
    each lower quantile subtracts one from the one above it.
    """

    def __init__(self, median_index: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.median_index = median_index

    def call(self, inputs):
        m = self.median_index
        n = inputs.shape[-1]
        median = inputs[..., m : m + 1]
        parts = []
        if m > 0:
            steps = ops.softplus(ops.flip(inputs[..., :m], axis=-1))
            parts.append(median - ops.flip(ops.cumsum(steps, axis=-1), axis=-1))
        parts.append(median)
        if m < n - 1:
            parts.append(median + ops.cumsum(ops.softplus(inputs[..., m + 1 :]), axis=-1))
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "median_index": self.median_index}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ForecastDenormalization(keras.layers.Layer):
    """Maps a forecast in window units back: ``location + scale * forecast``.

    Inputs: ``[forecast [B, H, Q], location [B, 1], scale [B, 1]]``. With a zero forecast (the
    initial state of the output layer) the result is the last observed value for every step.
    """

    def call(self, inputs):
        forecast, location, scale = inputs
        return ops.expand_dims(location, -1) + ops.expand_dims(scale, -1) * forecast

    def compute_output_shape(self, input_shape):
        return input_shape[0]
