"""A frozen pretrained sentence encoder for the text features: format, cache, model, state."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import save_file
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from fusioncast.config import ModelConfig, TrainingConfig
from fusioncast.demo import DEMO_CONTRACT as C
from fusioncast.embeddings import SentenceEncoder, embed_texts
from fusioncast.errors import ConfigError, ModelStateError
from fusioncast.forecast import Forecaster
from fusioncast.split import split_by_time
from fusioncast.state import prepare
from fusioncast.training import train_forecaster
from fusioncast.windows import forecast_origins, gather_inputs, sampler

WORDS = [
    *("[UNK]", "sale", "promotion", "discount", "price", "cut", "holiday", "store", "closed"),
    *("storm", "heavy", "rain", "weekend", "market", "festival", "new", "product", "launch"),
    *("delivery", "delayed", "strike"),
]
DIM = 6


def make_encoder(directory: Path, *, seed: int = 0) -> Path:
    """A tiny encoder: a WordLevel tokenizer over ``WORDS`` and a random ``[V, DIM]`` matrix."""
    directory.mkdir(parents=True, exist_ok=True)
    vocabulary = {word: i for i, word in enumerate(WORDS)}
    tokenizer = Tokenizer(WordLevel(vocabulary, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.save(str(directory / "tokenizer.json"))
    table = np.random.default_rng(seed).normal(size=(len(WORDS), DIM)).astype(np.float32)
    save_file({"embedding.weight": table}, str(directory / "embeddings.safetensors"))
    return directory


@pytest.fixture
def encoder_dir(tmp_path) -> Path:
    return make_encoder(tmp_path / "encoder")


def test_a_text_is_the_normalised_mean_of_its_token_vectors(encoder_dir):
    encoder = SentenceEncoder.load(encoder_dir)
    table = encoder.table
    vectors, has_tokens = encoder.encode(["sale price cut", "storm", "", "sale unknownword"])
    row = {word: i for i, word in enumerate(WORDS)}
    expected = table[[row["sale"], row["price"], row["cut"]]].mean(axis=0)
    np.testing.assert_allclose(vectors[0], expected / np.linalg.norm(expected), rtol=1e-6)
    storm = table[row["storm"]]
    np.testing.assert_allclose(vectors[1], storm / np.linalg.norm(storm), rtol=1e-6)
    assert has_tokens.tolist() == [True, True, False, True]
    assert (vectors[2] == 0).all()
    # an unknown word is the tokenizer's [UNK] token, which has a row like any other
    unknown = table[[row["sale"], row["[UNK]"]]].mean(axis=0)
    np.testing.assert_allclose(vectors[3], unknown / np.linalg.norm(unknown), rtol=1e-6)
    (encoder_dir / "encoder.json").write_text(json.dumps({"normalise": False}))
    raw, _ = SentenceEncoder.load(encoder_dir).encode(["sale price cut"])
    np.testing.assert_allclose(raw[0], expected, rtol=1e-6)


def test_distinct_texts_are_encoded_once_and_read_back_from_the_cache(
    encoder_dir, tmp_path, monkeypatch
):
    encoder = SentenceEncoder.load(encoder_dir)
    texts = np.array(["storm", None, "sale", "storm", "", "sale"], dtype=object)
    calls = []
    encode = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda batch: calls.append(batch) or encode(batch))
    cache = encoder.cache_dir(tmp_path / "workspace")
    table, index = embed_texts(encoder, texts, cache)
    assert calls == [["sale", "storm"]]
    assert len(table) == 2 and index.tolist() == [1, -1, 0, 1, -1, 0]
    assert len(list(cache.glob("*.parquet"))) == 1
    assert cache.parent.name == "embeddings" and cache.name == encoder.sha256[:16]

    again, again_index = embed_texts(encoder, texts, cache)
    assert len(calls) == 1  # read from the cache: the encoder was not called
    np.testing.assert_array_equal(again, table)
    np.testing.assert_array_equal(again_index, index)

    pair = np.array(["sale", "holiday"], dtype=object)
    cached_pair, pair_index = embed_texts(encoder, pair, cache)
    assert calls[1:] == [["holiday"]] and len(list(cache.glob("*.parquet"))) == 2
    in_memory, memory_index = embed_texts(encoder, pair)  # no cache: encoded again
    assert calls[2:] == [["holiday", "sale"]]
    np.testing.assert_array_equal(in_memory[memory_index], cached_pair[pair_index])


def test_a_bad_encoder_directory_is_a_config_error_naming_it(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match=str(missing)):
        SentenceEncoder.load(missing)
    broken = make_encoder(tmp_path / "broken")
    (broken / "embeddings.safetensors").unlink()
    with pytest.raises(ConfigError, match="embeddings.safetensors is missing"):
        SentenceEncoder.load(broken)
    save_file({"w": np.zeros((3, 2, 2), np.float32)}, str(broken / "embeddings.safetensors"))
    with pytest.raises(ConfigError, match="2-D"):
        SentenceEncoder.load(broken)
    with pytest.raises(ValueError, match="pretrained_encoder"):
        ModelConfig(text_encoder="pretrained")
    with pytest.raises(ValueError, match="pretrained_encoder"):
        ModelConfig(text_encoder="bag", pretrained_encoder=str(broken))


def _config(encoder_dir: Path, **overrides) -> ModelConfig:
    settings = dict(
        lookback=14,
        horizon=5,
        numeric_units=8,
        text_units=8,
        hidden_units=16,
        text_encoder="pretrained",
        pretrained_encoder=str(encoder_dir),
        text_fusion="additive",
    )
    return ModelConfig(**{**settings, **overrides})


def test_text_dropout_and_removal_blank_whole_windows(demo_frame, encoder_dir):
    config = _config(encoder_dir)
    _, arrays = prepare(demo_frame, C, split_by_time(demo_frame, C), config)
    origins = forecast_origins(arrays, config.lookback)
    full = sampler(arrays, origins, config, 64, with_targets=False)[0][0]
    assert full["text_0_embeddings"].shape == (len(origins), config.lookback, DIM)
    present = full["text_0_age"] < config.lookback
    assert present.any() and (np.linalg.norm(full["text_0_embeddings"][present], axis=-1) > 0).all()
    assert (full["text_0_embeddings"][~present] == 0).all()
    removed = sampler(arrays, origins, config, 64, with_targets=False, without_text=True)[0][0]
    assert (removed["text_0_age"] == config.lookback).all()
    assert (removed["text_0_embeddings"] == 0).all()
    dropped = sampler(arrays, origins, config, 64, with_targets=False, text_dropout=0.5, seed=3)
    inputs = dropped[0][0]
    blank = (inputs["text_0_age"] == config.lookback).all(axis=1) & present.any(axis=1)
    assert blank.any() and (~blank & present.any(axis=1)).any()
    assert (inputs["text_0_embeddings"][blank] == 0).all()
    np.testing.assert_array_equal(inputs["text_0_age"][~blank], full["text_0_age"][~blank])


@pytest.fixture
def trained(demo_frame, encoder_dir, tmp_path):
    first_days = demo_frame[C.timestamp] < demo_frame[C.timestamp].min() + pd.Timedelta(days=120)
    frame = demo_frame[first_days]
    boundaries = split_by_time(frame, C)
    state, arrays = prepare(frame, C, boundaries, _config(encoder_dir), tmp_path / "workspace")
    training = TrainingConfig(epochs=1, batch_size=32, steps_per_epoch=3, learning_rate=1e-2)
    forecaster, _ = train_forecaster(state, arrays, training)
    return frame, forecaster, arrays


@pytest.mark.slow
def test_a_pretrained_model_trains_saves_loads_and_forecasts_new_text(trained, tmp_path):
    frame, forecaster, arrays = trained
    origins = forecast_origins(arrays, 14)
    inputs = gather_inputs(arrays, origins, 14, 0)
    assert inputs["text_0_embeddings"].shape == (len(origins), 14, DIM)
    assert forecaster.state.embedding_cache is not None
    assert list(forecaster.state.embedding_cache.glob("*.parquet"))

    forecaster.version = "v1"
    forecaster.save(tmp_path)
    saved = json.loads((tmp_path / "text_encoder.json").read_text())
    assert saved["sha256"] == forecaster.state.text_encoder.sha256
    loaded = Forecaster.load(tmp_path, "v1")
    np.testing.assert_allclose(
        loaded.predict_windows(arrays, origins), forecaster.predict_windows(arrays, origins)
    )
    fresh = frame.copy()
    note = C.text[0]
    fresh[note] = fresh[note].where(fresh[note].isna(), "festival holiday weekend sale")
    run = dict(freq="D", run_id="r", created_at=pd.Timestamp("2026-01-01", tz="UTC"))
    forecasts = loaded.predict(fresh, **run)
    assert np.isfinite(forecasts["forecast"]).all()
    assert len(forecasts) == len(origins) * 5


@pytest.mark.slow
def test_without_text_additive_fusion_gives_exactly_the_numeric_forecast(trained):
    _, forecaster, arrays = trained
    origins = forecast_origins(arrays, 14)
    removed = forecaster.predict_windows(arrays, origins, without_text=True)
    model = forecaster.model
    numeric = {k: v for k, v in gather_inputs(arrays, origins, 14, 0).items()}
    numeric["text_0_embeddings"][:] = np.random.default_rng(0).normal(size=(DIM,))
    numeric["text_0_age"][:] = 14  # every step without text, whatever sits in the vectors
    np.testing.assert_array_equal(model.predict(numeric, verbose=0), removed)
    with_text = forecaster.predict_windows(arrays, origins)
    assert not np.allclose(with_text, removed)  # the text branch does act when there is text
    shuffled = forecaster.predict_windows(arrays, origins, shuffle_text=True)
    assert shuffled.shape == with_text.shape


@pytest.mark.slow
def test_an_encoder_changed_since_training_is_refused(trained, tmp_path):
    _, forecaster, _ = trained
    forecaster.save(tmp_path)
    encoder_path = forecaster.state.text_encoder.path
    make_encoder(encoder_path, seed=1)  # same files, other vectors
    with pytest.raises(ModelStateError, match="changed since the model was trained"):
        Forecaster.load(tmp_path, "v1")
    shutil.rmtree(encoder_path)
    with pytest.raises(ConfigError, match=str(encoder_path)):
        Forecaster.load(tmp_path, "v1")


def test_the_encoder_reproduces_wordllama(tmp_path):
    wordllama = pytest.importorskip("wordllama")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from text_encoder import export_wordllama
    finally:
        sys.path.pop(0)

    directory = export_wordllama(tmp_path / "wordllama")
    model = wordllama.WordLlama.load(
        cache_dir=Path(wordllama.__file__).parent, disable_download=True
    )
    texts = ["A storm closed the store", "Half price on dairy this weekend", "new product"]
    ours, has_tokens = SentenceEncoder.load(directory).encode(texts)
    assert has_tokens.all()
    np.testing.assert_allclose(ours, model.embed(texts, norm=True), atol=1e-5)


@pytest.mark.slow
def test_the_flows_cache_the_embeddings_in_the_workspace(prefect_server, encoder_dir, tmp_path):
    from fusioncast.demo import write_demo_dataset
    from fusioncast.flows.forecast import forecast_flow
    from fusioncast.flows.retrain import retrain
    from fusioncast.parameters import ForecastParameters, RetrainParameters, Workspace

    data = write_demo_dataset(tmp_path / "data", n_stores=1, n_categories=2, n_days=120, seed=7)
    workspace = Workspace(root=str(tmp_path / "out"))
    settings = _config(encoder_dir, lookback=14, horizon=7).model_dump(mode="json")
    first = retrain(
        RetrainParameters(
            data_path=str(data),
            workspace=workspace,
            model=settings,
            training=TrainingConfig(epochs=1, batch_size=32, steps_per_epoch=2),
            promotion={"best_baseline_margin": None, "require_beating_last_value": False},
        )
    )
    cache = workspace.path / "embeddings" / SentenceEncoder.load(encoder_dir).sha256[:16]
    parts = sorted(cache.glob("*.parquet"))
    assert parts, "the retrain wrote no embeddings to the workspace"
    second = forecast_flow(ForecastParameters(data_path=str(data), workspace=workspace))
    assert sorted(cache.glob("*.parquet")) == parts  # every text was read from the cache
    new = pd.read_parquet(second["forecasts_path"])["forecast"]
    pd.testing.assert_series_equal(new, pd.read_parquet(first["forecasts_path"])["forecast"])
