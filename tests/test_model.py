"""Behaviour of the model a user depends on: masking, empty text, save/load, quantiles."""

import keras
import numpy as np
import pytest

from fusioncast.config import ModelConfig
from fusioncast.layers import MaskedAttentionPooling
from fusioncast.model import ModelSpec, build_model, compile_model, explanation_model, load_model
from fusioncast.tokenize import BOS, PAD

LOOKBACK, HORIZON, TOKENS = 12, 4, 10


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    config = ModelConfig(
        lookback=LOOKBACK,
        horizon=HORIZON,
        max_text_tokens=TOKENS,
        numeric_units=8,
        text_units=8,
        text_embedding_dim=8,
        hidden_units=16,
        dropout=0.0,
    )
    return ModelSpec(
        config,
        n_numeric=2,
        static_cardinalities=[3],
        dynamic_cardinalities=[8],
        text_vocabulary_sizes=[40, 30],
    )


def _inputs(batch: int, seed: int = 0, n_text_tokens: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    inputs = {
        "numeric": rng.normal(size=(batch, LOOKBACK, 2)).astype("float32"),
        "static_0": rng.integers(0, 3, (batch, 1)).astype("int32"),
        "dynamic_0": rng.integers(0, 8, (batch, LOOKBACK)).astype("int32"),
    }
    for i, vocabulary in enumerate((40, 30)):
        tokens = np.full((batch, TOKENS), PAD, dtype="int32")
        age = np.full((batch, TOKENS), LOOKBACK, dtype="int32")
        tokens[:, 0] = BOS
        tokens[:, 1 : 1 + n_text_tokens] = rng.integers(3, vocabulary, (batch, n_text_tokens))
        age[:, 1 : 1 + n_text_tokens] = np.sort(rng.integers(0, LOOKBACK, (batch, n_text_tokens)))[
            :, ::-1
        ]
        inputs[f"text_{i}_tokens"], inputs[f"text_{i}_age"] = tokens, age
    return inputs


@pytest.fixture(scope="module")
def trained(spec) -> keras.Model:
    """A model after a few steps of training, so no weight is still at its initial zero."""
    keras.utils.set_random_seed(1)
    model = compile_model(build_model(spec), spec.config, 1e-2)
    x = _inputs(64, seed=1)
    y = np.random.default_rng(2).normal(size=(64, HORIZON)).astype("float32")
    model.fit(x, y, epochs=5, batch_size=16, verbose=0)
    return model


def test_untrained_model_forecasts_the_last_value(spec):
    keras.utils.set_random_seed(0)
    model = build_model(spec)
    x = _inputs(6)
    forecast = model.predict(x, verbose=0)
    assert forecast.shape == (6, HORIZON, 3)
    median = forecast[..., spec.config.quantiles.index(0.5)]
    np.testing.assert_allclose(median, np.repeat(x["numeric"][:, -1:, 0], HORIZON, 1), atol=1e-6)


def test_padding_does_not_change_the_forecast(trained):
    x = _inputs(8, seed=5)
    reference = trained.predict(x, verbose=0)
    # Whatever sits under the padding (other ids' ages, garbage ages) must not matter ...
    noisy = {k: v.copy() for k, v in x.items()}
    noisy["text_0_age"][:, 6:] = 3
    np.testing.assert_allclose(trained.predict(noisy, verbose=0), reference, atol=1e-5)


def test_padding_invariance_across_sequence_lengths(spec, trained):
    """The same text in a longer, more padded window gives the same forecast."""
    longer_config = spec.config.model_copy(update={"max_text_tokens": TOKENS + 7})
    longer = build_model(
        ModelSpec(longer_config, **{k: v for k, v in vars(spec).items() if k != "config"})
    )
    longer.set_weights(trained.get_weights())
    x = _inputs(8, seed=6)
    padded = dict(x)
    for i in range(2):
        padded[f"text_{i}_tokens"] = np.pad(x[f"text_{i}_tokens"], ((0, 0), (0, 7)))
        padded[f"text_{i}_age"] = np.pad(
            x[f"text_{i}_age"], ((0, 0), (0, 7)), constant_values=LOOKBACK
        )
    np.testing.assert_allclose(
        longer.predict(padded, verbose=0), trained.predict(x, verbose=0), atol=1e-5
    )


def test_attention_gives_padding_exactly_zero_weight(trained):
    x = _inputs(8, seed=7, n_text_tokens=3)
    _, weights_0, weights_1 = explanation_model(trained, 2).predict(x, verbose=0)
    for weights in (weights_0, weights_1):
        assert (weights[:, 4:] == 0).all()
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
        assert (weights[:, :4] > 0).all()


def test_window_without_any_text_gives_finite_forecasts(trained):
    x = _inputs(4, seed=8, n_text_tokens=0)  # only the begin marker, everything else padding
    forecast = trained.predict(x, verbose=0)
    assert np.isfinite(forecast).all()


def test_quantiles_never_cross(trained):
    x = _inputs(32, seed=9)
    x["numeric"] *= 50  # far outside anything seen in training
    forecast = trained.predict(x, verbose=0)
    assert (np.diff(forecast, axis=-1) >= 0).all()


def test_save_and_load_with_safe_mode_gives_identical_predictions(trained, tmp_path):
    path = tmp_path / "model.keras"
    trained.save(path)
    loaded = load_model(path)
    x = _inputs(8, seed=10)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), trained.predict(x, verbose=0))
    explained = explanation_model(loaded, 2).predict(x, verbose=0)
    assert explained[1].shape == (8, TOKENS)


def test_attention_layer_without_mask_uses_every_step():
    layer = MaskedAttentionPooling(4)
    values = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    context, weights = layer(values)
    np.testing.assert_allclose(np.asarray(weights).sum(axis=1), 1.0, atol=1e-6)
    assert np.asarray(context).shape == (2, 3)


def test_point_loss_model_has_a_single_output_channel(spec):
    config = spec.config.model_copy(update={"loss": "mse"})
    model = compile_model(build_model(ModelSpec(config, n_numeric=2)), config, 1e-3)
    x = {"numeric": np.zeros((3, LOOKBACK, 2), dtype="float32")}
    assert model.predict(x, verbose=0).shape == (3, HORIZON, 1)


@pytest.fixture(scope="module")
def additive(spec) -> keras.Model:
    """A trained model whose text branches add gated corrections (``text_fusion="additive"``)."""
    config = spec.config.model_copy(update={"text_fusion": "additive"})
    additive_spec = ModelSpec(config, **{k: v for k, v in vars(spec).items() if k != "config"})
    keras.utils.set_random_seed(3)
    model = compile_model(build_model(additive_spec), config, 1e-2)
    x = _inputs(64, seed=3)
    y = np.random.default_rng(4).normal(size=(64, HORIZON)).astype("float32")
    model.fit(x, y, epochs=5, batch_size=16, verbose=0)
    return model


def _scramble_text_weights(model: keras.Model) -> keras.Model:
    """A copy of ``model`` with every text-branch weight replaced by random values."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    rng = np.random.default_rng(11)
    for layer in copy.layers:
        if layer.name.startswith("text_") and layer.weights:
            layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.weights])
    return copy


def test_additive_text_leaves_windows_without_text_to_the_numeric_model(additive):
    """A window whose text is missing (a feed that stopped) ignores the text branches entirely."""
    scrambled = _scramble_text_weights(additive)
    empty = _inputs(6, seed=12, n_text_tokens=0)
    np.testing.assert_allclose(
        scrambled.predict(empty, verbose=0), additive.predict(empty, verbose=0), atol=1e-5
    )
    with_text = _inputs(6, seed=12, n_text_tokens=3)
    gap = np.abs(scrambled.predict(with_text, verbose=0) - additive.predict(with_text, verbose=0))
    assert gap.max() > 1e-3  # where there is text, the text branches do act


def test_additive_text_model_saves_and_loads_with_safe_mode(additive, tmp_path):
    path = tmp_path / "additive.keras"
    additive.save(path)
    x = _inputs(8, seed=13)
    np.testing.assert_array_equal(
        load_model(path).predict(x, verbose=0), additive.predict(x, verbose=0)
    )
