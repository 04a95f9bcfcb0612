"""Fitting the model: seeded, with early stopping on the validation split and resumable epochs.

:func:`train_forecaster` is how a forecaster comes to be: the model of a prepared state
(:func:`fusioncast.state.prepare`) trained on its arrays.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from fusioncast import distribution
from fusioncast.backups import (
    ResumableBackup,
    backup_name,
    claim_backup,
    fit_identity,
    remove_stale_backups,
)
from fusioncast.baselines import RidgeBaseline
from fusioncast.config import ModelConfig, TrainingConfig
from fusioncast.errors import ConfigError, DistributionError, FusioncastError
from fusioncast.forecast import Forecaster
from fusioncast.model import LINEAR_SKIP, PEER_MIX, ModelSpec, build_model, compile_model
from fusioncast.split import TRAIN, VALIDATION
from fusioncast.state import ForecastingState
from fusioncast.windows import SeriesArrays, WindowSampler, gather_targets, sampler, window_origins

HISTORY_VERSION = 2
SHARE_POWER = 2
"""The power of the inverse validation MSE that gives each forecaster its share of the mix."""


@dataclass
class TrainingResult:
    """The fitted model and how the fit went.

    ``best_epoch`` and ``epochs_run`` count the epochs of a killed run this one resumed;
    ``history`` holds the epochs this run trained. ``start`` says whether it resumed (``resumed
    from epoch N of a killed run``) or started fresh, and why a backup that was there was not used.
    """

    model: keras.Model
    history: dict[str, list[float]]
    best_epoch: int
    epochs_run: int
    start: str = "started fresh"

    def to_json(self) -> dict[str, Any]:
        return {
            "version": HISTORY_VERSION,
            "history": self.history,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "start": self.start,
        }


class EpochReporter(keras.callbacks.Callback):
    """Calls ``report(epoch, logs)`` once per finished epoch (never per batch)."""

    def __init__(self, report: Callable[[int, dict[str, float]], None]) -> None:
        super().__init__()
        self.report = report

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.report(epoch + 1, {k: float(v) for k, v in (logs or {}).items()})


class SamplerEpoch(keras.callbacks.Callback):
    """Tells the training sampler which epoch starts (a resumed fit counts on from its backup),
    before Keras asks for any of its batches."""

    def __init__(self, sampler: WindowSampler) -> None:
        super().__init__()
        self.sampler = sampler

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.sampler.epoch = epoch


def train_forecaster(
    state: ForecastingState,
    arrays: SeriesArrays,
    training: TrainingConfig,
    *,
    backup_dir: Path | None = None,
    shuffle_text: bool = False,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[Forecaster, TrainingResult]:
    """The forecaster of ``state`` with its model trained on ``arrays`` (:func:`train_model`),
    and how the fit went."""
    result = train_model(
        arrays,
        state.spec,
        training,
        backup_dir=backup_dir,
        shuffle_text=shuffle_text,
        on_epoch=on_epoch,
    )
    return Forecaster(result.model, state), result


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
        backup_dir: where epoch-end backups go (:mod:`fusioncast.backups`). A killed run
            started again with the same data and settings resumes after its last completed
            epoch; any other run starts fresh and removes the backups no live run holds. A
            finished fit removes its own. ``multi_worker``: process 0 keeps the backups, and
            every process restores process 0's (:func:`fusioncast.distribution.same_files`).
        shuffle_text: train on text shuffled across windows (the control for the text's value).
        on_epoch: called after every epoch with its number and logs.
    """
    cfg = spec.config
    train_origins = window_origins(arrays, cfg.lookback, cfg.horizon, TRAIN)
    validation_origins = window_origins(arrays, cfg.lookback, cfg.horizon, VALIDATION)
    for name, origins in (("train", train_origins), ("validation", validation_origins)):
        if len(origins) == 0:
            raise ConfigError(
                f"no series has a full {name} window of lookback {cfg.lookback} + horizon "
                f"{cfg.horizon} steps: give more history, or a shorter model.lookback or "
                "model.horizon"
            )
    limit = training.max_validation_windows
    if limit is not None and len(validation_origins) > limit:
        # A fixed subset, so that epochs stay comparable for early stopping.
        picks = np.random.default_rng(training.seed).choice(len(validation_origins), limit, False)
        validation_origins = np.sort(validation_origins[picks])

    def data(origins: np.ndarray, *, train: bool) -> WindowSampler:
        return sampler(
            arrays,
            origins,
            cfg,
            training.batch_size,
            shuffle=train,
            seed=training.seed,
            shuffle_text=shuffle_text,
            text_dropout=training.text_window_dropout if train else 0.0,
            steps_per_epoch=training.steps_per_epoch if train else None,
            share=distribution.share(training.distribution),
        )

    keras.utils.set_random_seed(training.seed)
    # the model's variables live on the devices of the scope; the fit splits each batch there
    with distribution.scope(training.distribution) as replicas:
        backup, removed = None, []
        if backup_dir is not None and distribution.writes(training.distribution):
            identity = fit_identity(arrays, spec, training, shuffle_text=shuffle_text)
            name = backup_name(identity)
            removed = remove_stale_backups(backup_dir, keep={name})
            removed = [p for p in removed if not p.name.startswith(name)]  # not a twin's one-off
            backup = (Path(backup_dir) / name, identity)
        elif backup_dir is not None:  # multi_worker: a copy of process 0's, in a scratch folder
            backup = (None, {})
        model = compile_model(
            build_model(spec, training.seed),
            cfg,
            training.learning_rate,
            weight_decay=training.weight_decay,
            replicas=replicas,
        )
        for layer, weights in fit_skip(arrays, cfg).items():
            model.get_layer(layer).set_weights(weights)
        try:
            history, best, epochs_run, start = _fit(
                model,
                data(train_origins, train=True),
                data(validation_origins, train=False),
                training,
                keep_initial=training.keep_initial,
                backup=backup,
                on_epoch=on_epoch,
                verbose=verbose,
            )
        except Exception as error:
            if training.distribution != "multi_worker" or isinstance(error, FusioncastError):
                raise
            raise DistributionError(
                f"training.distribution 'multi_worker': process "
                f"{distribution.share('multi_worker')[0]} stopped training; another process "
                f"of the job failed or cannot be reached: {str(error).splitlines()[0]}"
            ) from error
    if training.distribution == "multi_worker":  # on this process's devices from here on
        model = _local_copy(model, spec, training)
    if not start and removed:
        others = f" (and {len(removed) - 1} more)" if len(removed) > 1 else ""
        start = (
            f"started fresh: the backup at {removed[0]}{others} was made with other settings; "
            "removed"
        )
    start = start or "started fresh"
    return TrainingResult(model, history, best, epochs_run, start)


def _local_copy(model: keras.Model, spec: ModelSpec, training: TrainingConfig) -> keras.Model:
    """The trained ``model`` on this process alone: its variables of a ``multi_worker`` job
    span the job's devices, and evaluating, saving or forecasting with them would wait on the
    other processes."""
    copy = compile_model(
        build_model(spec, training.seed),
        spec.config,
        training.learning_rate,
        weight_decay=training.weight_decay,
    )
    copy.set_weights(model.get_weights())
    return copy


def _fit(
    model: keras.Model,
    train_data: WindowSampler,
    validation_data: WindowSampler,
    training: TrainingConfig,
    *,
    keep_initial: bool,
    backup: tuple[Path | None, dict[str, Any]] | None,
    on_epoch: Callable[[int, dict[str, float]], None] | None,
    verbose: int,
) -> tuple[dict[str, list[float]], int, int, str]:
    """Fit with early stopping.

    Returns the history of the epochs trained here, the best epoch (0: initial weights kept) and
    the epochs run, both counting those of a resumed backup, and what became of a backup that
    was there (empty when there was none).
    """
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=training.patience, restore_best_weights=True
    )
    callbacks: list[keras.callbacks.Callback] = [
        SamplerEpoch(train_data),
        early_stopping,
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=max(1, training.patience // 2), min_lr=1e-5
        ),
    ]
    initial = None
    if keep_initial:
        initial = (float(model.evaluate(validation_data, verbose=0)), model.get_weights())
    with contextlib.ExitStack() as stack:
        restore, resumed, start = None, 0, ""
        if backup is not None and backup[0] is None:
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="fusioncast-fit-"))
            restore = ResumableBackup(Path(scratch))
        elif backup is not None:
            claimed = stack.enter_context(claim_backup(*backup))
            restore = ResumableBackup(claimed.path)
            start = claimed.note
        if restore is not None:
            if training.distribution == "multi_worker":  # every process resumes process 0's
                distribution.same_files(restore.backup_dir)
            callbacks.append(restore)
        if on_epoch is not None:  # after the backup: a reported epoch is a saved one
            callbacks.append(EpochReporter(on_epoch))
        fitted = model.fit(
            train_data,
            validation_data=validation_data,
            epochs=training.epochs,
            callbacks=callbacks,
            # The sampler shuffles, seeded; Keras's shuffle of the batch order would draw from
            # Python's global `random`, which other threads of a worker (Dask's, Prefect's) draw
            # from too.
            shuffle=False,
            verbose=verbose,
        )
    if restore is not None and restore.unloadable:
        start = restore.unloadable
    elif restore is not None and restore.resumed_epoch:
        resumed = restore.resumed_epoch
        where = f"backup {restore.backup_dir}" if backup[0] else "process 0's backup"
        start = f"resumed from epoch {resumed} of a killed run ({where})"
    history = {k: [float(v) for v in values] for k, values in fitted.history.items()}
    val_loss = history.get("val_loss", [])
    best = resumed + int(np.argmin(val_loss)) + 1 if val_loss else resumed
    # A resumed backup that had run every epoch has no history here: its weights are the fit's.
    trained_better = min(val_loss) < initial[0] if initial and val_loss else resumed
    if initial is not None and not trained_better:
        model.set_weights(initial[1])
        best = 0
    return history, best, resumed + len(val_loss), start


def fit_skip(arrays: SeriesArrays, config: ModelConfig) -> dict[str, list[np.ndarray]]:
    """The weights of the model's skip layers, by layer name, for ``config.linear_skip``.

    ``ridge`` and ``ridge_normalised``: :func:`fit_linear_skip`. ``statistical``: those, and the
    shares of the :class:`~fusioncast.layers.PeerMix` layer: the ridge skip's and each
    statistical peer's (``arrays.prior``), in inverse proportion to the square of their MSE on
    the validation windows (scaled target), summing to 1. On the Time-MMD domains, scored on
    steps after the ones the shares were fitted on, this mix was the rule closest to the best
    single forecaster, and squaring sharpened it where one forecaster is far ahead
    (``docs/selection.md``). ``none`` and ``zeros``: nothing to set.
    """
    if config.linear_skip not in ("ridge", "ridge_normalised", "statistical"):
        return {}
    weights, ridge = _ridge_skip(arrays, config)
    if config.linear_skip != "statistical":
        return {LINEAR_SKIP: weights}
    validation = window_origins(arrays, config.lookback, config.horizon, VALIDATION)
    actual = gather_targets(arrays, validation, config.horizon).astype(np.float64)
    peers = arrays.prior[validation].astype(np.float64)
    forecasts = [ridge, *(peers[..., k] for k in range(peers.shape[-1]))]
    mse = np.array([max(float(np.mean((f - actual) ** 2)), 1e-12) for f in forecasts])
    share = (mse.min() / mse) ** SHARE_POWER
    return {LINEAR_SKIP: weights, PEER_MIX: [(share / share.sum()).astype(np.float32)]}


def fit_linear_skip(arrays: SeriesArrays, config: ModelConfig) -> list[np.ndarray]:
    """Weights of the :class:`~fusioncast.layers.LinearSkip` layer from the two ridge baselines.

    The ridge on the lookback minus its last value (a change) and the ridge on the lookback (a
    level), each fitted on the training windows with its penalty chosen on the validation windows
    (:class:`~fusioncast.baselines.RidgeBaseline`); then their mix (level share 0, 1/2 or 1) of
    lowest validation MSE on the scaled target (``linear_skip="ridge_normalised"``: share 0, the
    change ridge alone). Returns ``[kernel, bias, level_kernel, level_bias, level_share]``
    (float32).
    """
    return _ridge_skip(arrays, config)[0]


def _ridge_skip(arrays: SeriesArrays, config: ModelConfig) -> tuple[list[np.ndarray], np.ndarray]:
    """:func:`fit_linear_skip`'s weights and the skip's forecasts of the validation windows."""
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
    weights = [
        relative.weights[:-1],
        relative.weights[-1],
        level.weights[:-1],
        level.weights[-1],
        np.array(share),
    ]
    forecast = (1 - share) * from_change + share * from_level
    return [np.asarray(w, dtype=np.float32) for w in weights], forecast
