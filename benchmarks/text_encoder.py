"""Learned token embeddings against a frozen pretrained sentence encoder, on the demo data.

Exports the sentence encoder bundled with the installed ``wordllama`` package (MIT licence; its
``l2_supercat`` model: a 32,000 x 256 token-embedding matrix, 16 MB, and its tokenizer) into an
encoder directory (``tokenizer.json``, ``embeddings.safetensors``, ``encoder.json``), then trains
the same model twice on a demo dataset, once with ``text_encoder="lstm"`` (learned token
embeddings) and once with ``text_encoder="pretrained"``, and prints the test MSE (z-scored) of
each, with its text removed at forecast time, and the demo's knowable limit and no-text limit.
``wordllama`` is needed only here (``pip install 'fusioncast[pretrained]'``); nothing is
downloaded.

    python benchmarks/text_encoder.py [--export DIR] [--seed 201] [--epochs 4]

With ``--export DIR`` only the encoder directory is written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

WORDLLAMA_CONFIG = "l2_supercat"
WORDLLAMA_DIM = 256


def export_wordllama(directory: Path) -> Path:
    """Write the installed wordllama's bundled encoder as an encoder directory; return it."""
    import wordllama
    from safetensors.numpy import load_file, save_file

    package = Path(wordllama.__file__).parent
    tokenizer = package / "tokenizers" / f"{WORDLLAMA_CONFIG}_tokenizer_config.json"
    weights = package / "weights" / f"{WORDLLAMA_CONFIG}_{WORDLLAMA_DIM}.safetensors"
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tokenizer, directory / "tokenizer.json")
    tensors = load_file(weights)
    if list(tensors) == ["embedding.weight"]:
        shutil.copyfile(weights, directory / "embeddings.safetensors")
    else:  # keep only the token embeddings, under a plain name
        save_file({"embedding": tensors["embedding.weight"]}, directory / "embeddings.safetensors")
    (directory / "encoder.json").write_text(json.dumps({"normalise": True}) + "\n")
    return directory


def run(encoder_dir: Path, seed: int, epochs: int, work: Path) -> dict[str, dict[str, float]]:
    from fusioncast.config import ModelConfig, TrainingConfig
    from fusioncast.demo import DEMO_CONTRACT, write_demo_dataset
    from fusioncast.evaluate import MODEL, TEXT_REMOVED, evaluate_model, season_length
    from fusioncast.references import (
        LIMIT,
        NO_TEXT_LIMIT,
        held_origins,
        read_reference_forecasts,
    )
    from fusioncast.split import split_by_time
    from fusioncast.state import prepare
    from fusioncast.training import train_forecaster
    from fusioncast.validation import validate_dataset

    data = write_demo_dataset(
        work / f"demo-{seed}", seed=seed, n_stores=2, n_categories=3, n_days=500
    )
    base = ModelConfig()
    training = TrainingConfig(epochs=epochs, seed=0)
    frame, report = validate_dataset(data, DEMO_CONTRACT, min_length=base.lookback + base.horizon)
    references = read_reference_forecasts(data)
    references["forecast_origin"] = held_origins(
        references["forecast_origin"], report.timezone, report.freq
    )
    boundaries = split_by_time(frame, DEMO_CONTRACT)
    variants = {
        "learned (lstm)": base,
        "pretrained": base.model_copy(
            update={"text_encoder": "pretrained", "pretrained_encoder": str(encoder_dir)}
        ),
    }
    rows = {}
    for name, config in variants.items():
        config = ModelConfig.model_validate(config.model_dump())
        start = time.perf_counter()
        state, arrays = prepare(frame, DEMO_CONTRACT, boundaries, config, work / "workspace")
        prepare_s = time.perf_counter() - start
        forecaster, result = train_forecaster(state, arrays, training)
        fit_s = time.perf_counter() - start - prepare_s
        evaluation = evaluate_model(
            forecaster, arrays, season=season_length(report.freq), references=references
        )
        mse = evaluation.summary().set_index("model")["mse"]
        rows[name] = {
            MODEL: float(mse[MODEL]),
            TEXT_REMOVED: float(mse[TEXT_REMOVED]),
            LIMIT: float(mse[LIMIT]),
            NO_TEXT_LIMIT: float(mse[NO_TEXT_LIMIT]),
            "best_epoch": result.best_epoch,
            "prepare_s": prepare_s,
            "fit_s": fit_s,
        }
        print(
            f"{name}: test MSE {mse[MODEL]:.4f}, text removed {mse[TEXT_REMOVED]:.4f}; "
            f"limit {mse[LIMIT]:.4f}, no-text limit {mse[NO_TEXT_LIMIT]:.4f} (best epoch "
            f"{result.best_epoch}, prepare {prepare_s:.1f} s, fit {fit_s:.0f} s)",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, help="only write the encoder directory here")
    parser.add_argument("--seed", type=int, default=201, help="demo seed (not 0 or 101-103)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    if args.export is not None:
        print(f"encoder written to {export_wordllama(args.export)}")
        return
    with tempfile.TemporaryDirectory(prefix="fusioncast-text-encoder-") as work:
        encoder_dir = export_wordllama(Path(work) / "wordllama-encoder")
        rows = run(encoder_dir, args.seed, args.epochs, Path(work))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
