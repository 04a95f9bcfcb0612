"""Fitting the model: seeded, with early stopping on the validation split and resumable epochs."""

from __future__ import annotations

import contextlib
import fcntl
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from fusioncast.baselines import RidgeBaseline
from fusioncast.config import ModelConfig, TrainingConfig
from fusioncast.errors import DataValidationError
from fusioncast.model import LINEAR_SKIP, ModelSpec, build_model, compile_model
from fusioncast.split import TRAIN, VALIDATION
from fusioncast.windows import SeriesArrays, WindowSampler, gather_targets, window_origins

HISTORY_VERSION = 1
#: Names of the layers of the text branches (and their merge), trained alone in the text stage.
TEXT_LAYER_PREFIX = "text_"


@dataclass
class TrainingResult:
    model: keras.Model
    history: dict[str, list[float]]
    best_epoch: int
    epochs_run: int

    def to_json(self) -> dict[str, Any]:
        return {
            "version": HISTORY_VERSION,
            "history": self.history,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
        }


class EpochReporter(keras.callbacks.Callback):
    """Calls ``report(epoch, logs)`` once per finished epoch (never per batch).

    ``offset``: epochs already reported by an earlier stage of the same fit.
    """

    def __init__(self, report: Callable[[int, dict[str, float]], None], offset: int = 0) -> None:
        super().__init__()
        self.report = report
        self.offset = offset

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.report(self.offset + epoch + 1, {k: float(v) for k, v in (logs or {}).items()})


def model_spec_for(
    arrays: SeriesArrays,
    config: ModelConfig,
    static_cards: list[int],
    dynamic_cards: list[int],
    vocabulary_sizes: list[int],
) -> ModelSpec:
    return ModelSpec(
        config=config,
        n_numeric=arrays.numeric.shape[1],
        static_cardinalities=static_cards,
        dynamic_cardinalities=dynamic_cards,
        text_vocabulary_sizes=vocabulary_sizes,
    )


def sampler(
    arrays: SeriesArrays,
    origins: np.ndarray,
    config: ModelConfig,
    batch_size: int,
    **kwargs: Any,
) -> WindowSampler:
    """A :class:`WindowSampler` shaped by ``config``."""
    return WindowSampler(
        arrays,
        origins,
        lookback=config.lookback,
        horizon=config.horizon,
        max_text_tokens=config.max_text_tokens,
        batch_size=batch_size,
        **kwargs,
    )


def train_model(
    arrays: SeriesArrays,
    spec: ModelSpec,
    training: TrainingConfig,
    *,
    backup_dir: Path | None = None,
    shuffle_text: bool = False,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    verbose: int = 0,
) -> TrainingResult:
    """Fit a new model on the training windows with early stopping on the validation windows.

    Args:
        arrays: built with split boundaries.
        backup_dir: where epoch-end backups go; a killed run started again with the same
            directory resumes after its last completed epoch. Removed after a finished fit.
        shuffle_text: train on text shuffled across windows (the control for the text's value).
        on_epoch: called after every epoch with its number and logs.
    """
    cfg = spec.config
    train_origins = window_origins(arrays, cfg.lookback, cfg.horizon, TRAIN)
    validation_origins = window_origins(arrays, cfg.lookback, cfg.horizon, VALIDATION)
    for name, origins in (("train", train_origins), ("validation", validation_origins)):
        if len(origins) == 0:
            raise DataValidationError(
                f"{name}_windows",
                "lookback+horizon",
                0,
                f"no series has a full {name} window of lookback {cfg.lookback} + horizon "
                f"{cfg.horizon}; use more history or a shorter lookback/horizon",
            )
    limit = training.max_validation_windows
    if limit is not None and len(validation_origins) > limit:
        # A fixed subset, so that epochs stay comparable for early stopping.
        picks = np.random.default_rng(training.seed).choice(len(validation_origins), limit, False)
        validation_origins = np.sort(validation_origins[picks])
    keras.utils.set_random_seed(training.seed)
    model = compile_model(
        build_model(spec), cfg, training.learning_rate, weight_decay=training.weight_decay
    )
    if cfg.linear_skip in ("ridge", "ridge_normalised"):
        weights = fit_linear_skip(arrays, cfg)
        model.get_layer(LINEAR_SKIP).set_weights(weights)
    # Where no training step has text (a feed that began later) the text stage has nothing to
    # learn from: every training window is gated off.
    staged = (
        training.text_after_numeric
        and cfg.text_fusion == "additive"
        and any((np.diff(t.offsets)[arrays.split == TRAIN] > 0).any() for t in arrays.text)
    )

    def data(origins: np.ndarray, *, train: bool, without_text: bool) -> WindowSampler:
        return sampler(
            arrays,
            origins,
            cfg,
            training.batch_size,
            shuffle=train,
            seed=training.seed,
            shuffle_text=shuffle_text,
            without_text=without_text,
            text_dropout=training.text_window_dropout if train else 0.0,
            steps_per_epoch=training.steps_per_epoch if train else None,
        )

    # Staged: the numeric model first, on windows whose text is removed (the text corrections are
    # gated off, so they stay at zero); then only the text branches learn, on top of it.
    history, best = _fit_stage(
        model,
        data(train_origins, train=True, without_text=staged),
        data(validation_origins, train=False, without_text=staged),
        training,
        keep_initial=training.keep_initial,
        backup_dir=backup_dir,
        on_epoch=on_epoch,
        verbose=verbose,
    )
    if staged:
        numeric_epochs = len(history.get("val_loss", []))
        trainable = {layer.name: layer.trainable for layer in model.layers}
        for layer in model.layers:
            layer.trainable = layer.name.startswith(TEXT_LAYER_PREFIX)
        compile_model(model, cfg, training.learning_rate, weight_decay=training.weight_decay)
        text_backup = backup_dir and backup_dir.with_name(f"{backup_dir.name}-text")
        text_history, text_best = _fit_stage(
            model,
            data(train_origins, train=True, without_text=False),
            data(validation_origins, train=False, without_text=False),
            training,
            keep_initial=True,  # the text stays out unless it lowers the validation loss
            backup_dir=text_backup,
            on_epoch=on_epoch,
            verbose=verbose,
            epoch_offset=numeric_epochs,
        )
        for layer in model.layers:
            layer.trainable = trainable[layer.name]
        for key, values in text_history.items():
            history[key] = history.get(key, []) + values
        if text_best:
            best = numeric_epochs + text_best
    return TrainingResult(model, history, best, len(history.get("val_loss", [])))


def _fit_stage(
    model: keras.Model,
    train_data: WindowSampler,
    validation_data: WindowSampler,
    training: TrainingConfig,
    *,
    keep_initial: bool,
    backup_dir: Path | None,
    on_epoch: Callable[[int, dict[str, float]], None] | None,
    verbose: int,
    epoch_offset: int = 0,
) -> tuple[dict[str, list[float]], int]:
    """Fit with early stopping; returns the history and the best epoch (0: initial weights kept)."""
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=training.patience, restore_best_weights=True
    )
    callbacks: list[keras.callbacks.Callback] = [
        early_stopping,
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=max(1, training.patience // 2), min_lr=1e-5
        ),
    ]
    initial = None
    if keep_initial:
        initial = (float(model.evaluate(validation_data, verbose=0)), model.get_weights())
    with claim_backup_dir(backup_dir) as claimed:
        if claimed is not None:
            callbacks.append(keras.callbacks.BackupAndRestore(str(claimed), delete_checkpoint=True))
        if on_epoch is not None:  # after the backup: a reported epoch is a saved one
            callbacks.append(EpochReporter(on_epoch, epoch_offset))
        fitted = model.fit(
            train_data,
            validation_data=validation_data,
            epochs=training.epochs,
            callbacks=callbacks,
            verbose=verbose,
        )
    history = {k: [float(v) for v in values] for k, values in fitted.history.items()}
    val_loss = history.get("val_loss", [])
    best = int(np.argmin(val_loss)) + 1 if val_loss else 0
    margin = 1.0 - training.keep_initial_margin
    if initial is not None and (not val_loss or initial[0] * margin <= min(val_loss)):
        model.set_weights(initial[1])
        best = 0
    return history, best


@contextlib.contextmanager
def claim_backup_dir(path: Path | None) -> Iterator[Path | None]:
    """The backup directory this run may use, held (``flock``) while it trains.

    ``path`` itself when no live run holds it: a run killed part-way released it, so the next run
    on the same data resumes from its backup. When another run is training with it right now, a
    fresh directory beside it, so that concurrent runs never share (or delete) each other's backup.
    """
    if path is None:
        yield None
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for candidate in (path, path.with_name(f"{path.name}-{uuid.uuid4().hex[:8]}")):
        lock = candidate.with_name(f".{candidate.name}.lock")
        handle = open(lock, "a+")  # noqa: SIM115 - held for the whole fit
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            yield candidate
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()
            if candidate != path:  # a one-off directory: nobody resumes from it
                lock.unlink(missing_ok=True)
        return
    raise RuntimeError("unreachable: a fresh backup directory is never locked")


def fit_linear_skip(arrays: SeriesArrays, config: ModelConfig) -> list[np.ndarray]:
    """Weights of the :class:`~fusioncast.layers.LinearSkip` layer from the two ridge baselines.

    The ridge on the lookback minus its last value (a change) and the ridge on the lookback (a
    level), each fitted on the training windows with its penalty chosen on the validation windows
    (:class:`~fusioncast.baselines.RidgeBaseline`); then their mix (level share 0, 1/2 or 1) of
    lowest validation MSE on the scaled target (``linear_skip="ridge_normalised"``: share 0, the
    change ridge alone). With ``linear_skip_refit``, both ridges are then
    fitted again, with their penalties, on every window whose horizon ends before the test split
    (training and validation), so the skip reflects the latest steps it may see. Returns
    ``[kernel, bias, level_kernel, level_bias, level_share]`` (float32).
    """
    lookback, horizon = config.lookback, config.horizon
    relative = RidgeBaseline.fit(arrays, lookback, horizon, normalised=True)
    level = RidgeBaseline.fit(arrays, lookback, horizon, normalised=False)
    validation = window_origins(arrays, lookback, horizon, VALIDATION)
    actual = gather_targets(arrays, validation, horizon).astype(np.float64)
    from_change = relative.predict(arrays, validation)
    from_level = level.predict(arrays, validation)
    share = min(
        (0.0,) if config.linear_skip == "ridge_normalised" else (0.0, 0.5, 1.0),
        key=lambda s: float(np.mean(((1 - s) * from_change + s * from_level - actual) ** 2)),
    )
    keep = 1.0  # share of the mix's departure from the last value that is kept
    if config.linear_skip_shrink and len(validation):
        last = arrays.numeric[validation, 0][:, None].astype(np.float64)
        mix = (1 - share) * from_change + share * from_level
        keep = min(
            (1.0, 0.5, 0.0),
            key=lambda k: float(np.mean((last + k * (mix - last) - actual) ** 2)),
        )
    if config.linear_skip_refit and len(validation):
        fitted = window_origins(arrays, lookback, horizon)
        fitted = fitted[arrays.split[fitted + horizon] <= VALIDATION]
        relative, level = relative.refit(arrays, fitted), level.refit(arrays, fitted)
    # last + keep * (mix - last), in the layer's form: scale the change ridge by ``keep`` and
    # move the level ridge towards the last value (its kernel's last row) by ``1 - keep``.
    level_kernel = keep * level.weights[:-1]
    level_kernel[-1] += 1.0 - keep
    weights = [
        keep * relative.weights[:-1],
        keep * relative.weights[-1],
        level_kernel,
        keep * level.weights[-1],
        np.array(share),
    ]
    return [np.asarray(w, dtype=np.float32) for w in weights]
