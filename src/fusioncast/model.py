"""The multimodal forecasting model.

Branches:
  numeric: per-window normalised history (target first, then covariates) concatenated with one
      embedding per per-step categorical feature -> LSTM -> last state;
  static: one embedding per static categorical feature;
  text (one branch per text feature): TokenAndAgeEmbedding (mask on padding) -> LSTM (returns
      sequences, mask kept) -> MaskedAttentionPooling; with ``text_encoder="bag"`` the LSTM is
      left out (attention pooling straight over the token embeddings: a weighted bag of words,
      which needs far fewer windows to fit than a sequence model, as on short real series);
      with ``text_encoder="pretrained"`` each lookback step's text arrives as one frozen vector
      of a pretrained sentence encoder: ProjectionAndAgeEmbedding (a trainable projection plus
      the step's age; mask on steps without text) -> MaskedAttentionPooling.
The branches are concatenated, layer-normalised, passed
through a Dense layer, and a zero-initialised output layer gives ``[B, H, Q]`` in window units,
made non-crossing and mapped back: an untrained model forecasts the last observed value.
With ``text_fusion="additive"`` the text contexts stay out of the merged features: each text branch
adds its own zero-initialised correction to the output grid, gated off for windows without text,
so a window whose text is missing gets exactly the numeric model's forecast.
Optionally (``linear_skip``) linear forecasts from the target history are added to the median
before that, so the network learns a residual to a linear forecaster (ridges on the lookback and
on the lookback minus its last value, set by training), or (``"statistical"``) to a fixed mix of
those ridges and the statistical peers' forecasts of input ``prior``
(:func:`fusioncast.statistical.prior_forecasts`), which see the series' whole history; the mix's
shares are set by training from validation errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from fusioncast.config import ModelConfig
from fusioncast.errors import ModelStateError
from fusioncast.layers import (
    ForecastDenormalization,
    LinearSkip,
    MaskedAttentionPooling,
    MonotoneQuantiles,
    PeerMix,
    ProjectionAndAgeEmbedding,
    Seeds,
    StepPresenceGate,
    TextPresenceGate,
    TokenAndAgeEmbedding,
    WindowNormalization,
)
from fusioncast.losses import PinballLoss, PointLoss
from fusioncast.statistical import PRIOR_MODELS

#: 3: the prior's AutoARIMA models a season over 24 steps with Fourier terms (2: without that
#: season; 1: ``linear_skip="statistical"`` the mean of two peers, not the mix of three).
SPEC_VERSION = 3


@dataclass
class ModelSpec:
    """Everything needed to rebuild the model's shape: configuration plus data-dependent sizes."""

    config: ModelConfig
    n_numeric: int
    static_cardinalities: list[int] = field(default_factory=list)
    dynamic_cardinalities: list[int] = field(default_factory=list)
    text_vocabulary_sizes: list[int] = field(default_factory=list)
    #: Size of the pretrained encoder's vectors (``text_encoder="pretrained"``), else None.
    text_vector_dim: int | None = None

    def to_json(self) -> dict[str, Any]:
        vector_dim = (
            {} if self.text_vector_dim is None else {"text_vector_dim": self.text_vector_dim}
        )
        return {
            **vector_dim,
            "version": SPEC_VERSION,
            "config": self.config.model_dump(mode="json"),
            "n_numeric": self.n_numeric,
            "static_cardinalities": self.static_cardinalities,
            "dynamic_cardinalities": self.dynamic_cardinalities,
            "text_vocabulary_sizes": self.text_vocabulary_sizes,
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> ModelSpec:
        config = ModelConfig.model_validate(payload["config"])
        version = int(payload.get("version", 1))
        if config.linear_skip == "statistical" and version < SPEC_VERSION:
            raise ModelStateError(
                "rule 'spec_version' failed on spec.json: the model was trained with an earlier "
                f"statistical skip (spec version {version}, now {SPEC_VERSION}) whose peers' "
                "forecasts this version makes differently; retrain it"
            )
        return cls(
            config=config,
            n_numeric=int(payload["n_numeric"]),
            static_cardinalities=list(payload["static_cardinalities"]),
            dynamic_cardinalities=list(payload["dynamic_cardinalities"]),
            text_vocabulary_sizes=list(payload["text_vocabulary_sizes"]),
            text_vector_dim=payload.get("text_vector_dim"),
        )


def embedding_dim(cardinality: int) -> int:
    """Embedding size from a feature's cardinality (grows sub-linearly, at most 16)."""
    return int(min(16, max(2, round(1.6 * cardinality**0.56))))


LINEAR_SKIP = "linear_skip"
PEER_MIX = "peer_mix"


def attention_layer_name(text_index: int) -> str:
    return f"text_{text_index}_attention"


def _lstm(units: int, seeds: Seeds, **kwargs) -> keras.layers.LSTM:
    return keras.layers.LSTM(
        units,
        kernel_initializer=seeds.glorot(),
        recurrent_initializer=seeds.orthogonal(),
        seed=seeds(),
        **kwargs,
    )


def build_model(spec: ModelSpec, seed: int | None = None) -> keras.Model:
    """Build (uncompiled) the model for ``spec``; output ``forecast`` is ``[B, H, Q]`` scaled.

    ``seed``: of every random initial weight and dropout mask (see :class:`Seeds`).
    """
    seeds = Seeds(seed)
    cfg = spec.config
    lookback, horizon = cfg.lookback, cfg.horizon
    quantiles = cfg.output_quantiles
    inputs: dict[str, keras.KerasTensor] = {}

    numeric = keras.Input((lookback, spec.n_numeric), name="numeric")
    inputs["numeric"] = numeric
    normalised, location, scale = WindowNormalization(name="window_normalization")(numeric)
    sequence = [normalised]
    for i, cardinality in enumerate(spec.dynamic_cardinalities):
        codes = keras.Input((lookback,), dtype="int32", name=f"dynamic_{i}")
        inputs[f"dynamic_{i}"] = codes
        sequence.append(
            keras.layers.Embedding(
                cardinality,
                embedding_dim(cardinality),
                embeddings_initializer=seeds.uniform(),
                name=f"dynamic_{i}_embedding",
            )(codes)
        )
    history = (
        sequence[0] if len(sequence) == 1 else keras.layers.Concatenate(name="history")(sequence)
    )
    # The window's level and spread stay out of the features: a level never seen in training must
    # not reach the Dense layers, which would extrapolate it (they act only via denormalisation).
    merged = [_lstm(cfg.numeric_units, seeds, name="numeric_lstm")(history)]

    for i, cardinality in enumerate(spec.static_cardinalities):
        codes = keras.Input((1,), dtype="int32", name=f"static_{i}")
        inputs[f"static_{i}"] = codes
        embedded = keras.layers.Embedding(
            cardinality,
            embedding_dim(cardinality),
            embeddings_initializer=seeds.uniform(),
            name=f"static_{i}_embedding",
        )(codes)
        merged.append(keras.layers.Flatten(name=f"static_{i}_flat")(embedded))

    corrections = []  # additive text fusion: one gated correction per text branch
    for i, vocabulary_size in enumerate(spec.text_vocabulary_sizes):
        if cfg.text_encoder == "pretrained":
            vectors = keras.Input((lookback, spec.text_vector_dim), name=f"text_{i}_embeddings")
            age = keras.Input((lookback,), dtype="int32", name=f"text_{i}_age")
            inputs[f"text_{i}_embeddings"], inputs[f"text_{i}_age"] = vectors, age
            encoded = ProjectionAndAgeEmbedding(
                lookback, cfg.text_units, seed=seeds(), name=f"text_{i}_projection"
            )([vectors, age])
        else:
            tokens = keras.Input((cfg.max_text_tokens,), dtype="int32", name=f"text_{i}_tokens")
            age = keras.Input((cfg.max_text_tokens,), dtype="int32", name=f"text_{i}_age")
            inputs[f"text_{i}_tokens"], inputs[f"text_{i}_age"] = tokens, age
            encoded = TokenAndAgeEmbedding(
                vocabulary_size,
                lookback,
                cfg.text_embedding_dim,
                seed=seeds(),
                name=f"text_{i}_embedding",
            )([tokens, age])
        if cfg.text_encoder == "lstm":
            encoded = _lstm(cfg.text_units, seeds, return_sequences=True, name=f"text_{i}_lstm")(
                encoded
            )
        context, _ = MaskedAttentionPooling(
            cfg.text_units, seed=seeds(), name=attention_layer_name(i)
        )(encoded)
        if cfg.text_dropout > 0:
            context = keras.layers.Dropout(
                cfg.text_dropout, seed=seeds(), name=f"text_{i}_dropout"
            )(context)
        if cfg.text_fusion == "concat":
            merged.append(context)
            continue
        hidden = keras.layers.Dense(
            cfg.text_units,
            activation="gelu",
            kernel_initializer=seeds.glorot(),
            name=f"text_{i}_hidden",
        )(context)
        correction = keras.layers.Dense(
            horizon * len(quantiles),
            kernel_initializer="zeros",
            bias_initializer="zeros",
            name=f"text_{i}_output",
        )(hidden)
        correction = keras.layers.Reshape((horizon, len(quantiles)), name=f"text_{i}_grid")(
            correction
        )
        if cfg.text_encoder == "pretrained":
            gate = StepPresenceGate(lookback, name=f"text_{i}_gate")([correction, age])
        else:
            gate = TextPresenceGate(name=f"text_{i}_gate")([correction, tokens])
        corrections.append(gate)

    features = keras.layers.Concatenate(name="merge")(merged)
    features = keras.layers.LayerNormalization(name="merge_norm")(features)
    features = keras.layers.Dense(
        cfg.hidden_units, activation="gelu", kernel_initializer=seeds.glorot(), name="hidden"
    )(features)
    features = keras.layers.Dropout(cfg.dropout, seed=seeds(), name="dropout")(features)
    raw = keras.layers.Dense(
        horizon * len(quantiles),
        kernel_initializer="zeros",
        bias_initializer="zeros",
        name="output",
    )(features)
    raw = keras.layers.Reshape((horizon, len(quantiles)), name="output_grid")(raw)
    if corrections:
        raw = keras.layers.Add(name="text_corrections")([raw, *corrections])
    if cfg.linear_skip != "none":
        skip = LinearSkip(
            horizon,
            len(quantiles),
            quantiles.index(0.5),
            trainable=cfg.linear_skip_trainable,
            name=LINEAR_SKIP,
        )([numeric, location, scale])
        if cfg.linear_skip == "statistical":
            peers = keras.Input((horizon, len(PRIOR_MODELS)), name="prior")
            inputs["prior"] = peers
            skip = PeerMix(len(PRIOR_MODELS), len(quantiles), quantiles.index(0.5), name=PEER_MIX)(
                [skip, peers, location, scale]
            )
        raw = keras.layers.Add(name="residual")([raw, skip])
    ordered = MonotoneQuantiles(quantiles.index(0.5), name="quantiles")(raw)
    forecast = ForecastDenormalization(name="forecast")([ordered, location, scale])
    return keras.Model(inputs=inputs, outputs=forecast, name="fusioncast")


#: the largest norm of a step's gradient (larger ones are scaled down to it)
CLIPNORM = 1.0


def compile_model(
    model: keras.Model,
    config: ModelConfig,
    learning_rate: float,
    weight_decay: float = 0.0,
    replicas: int = 1,
) -> keras.Model:
    """The model compiled with its loss and Adam (AdamW with ``weight_decay``).

    ``replicas``: devices sharing each batch (:mod:`fusioncast.distribution`). Keras clips each
    replica's gradient before they are summed; each is about 1/``replicas`` of the batch's, so
    each is clipped at ``CLIPNORM / replicas``.
    """
    loss = PinballLoss(config.quantiles) if config.loss == "pinball" else PointLoss(config.loss)
    clipnorm = CLIPNORM / replicas
    if weight_decay > 0:
        optimizer = keras.optimizers.AdamW(
            learning_rate, weight_decay=weight_decay, clipnorm=clipnorm
        )
    else:
        optimizer = keras.optimizers.Adam(learning_rate, clipnorm=clipnorm)
    model.compile(optimizer=optimizer, loss=loss)
    return model


def explanation_model(model: keras.Model, n_text: int) -> keras.Model:
    """The same model with each text branch's attention weights ``[B, T]`` as extra outputs."""
    weights = [model.get_layer(attention_layer_name(i)).output[1] for i in range(n_text)]
    return keras.Model(inputs=model.inputs, outputs=[model.outputs[0], *weights])


def save_model(model: keras.Model, path: Path) -> None:
    model.save(path)


def load_model(path: Path) -> keras.Model:
    """Load a saved ``.keras`` model without executing stored code (``safe_mode=True``)."""
    return keras.saving.load_model(path, compile=False, safe_mode=True)
