"""Training: seeded reproducibility, and a run killed mid-training resumes where it stopped."""

from __future__ import annotations

import math
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from tiny_pipeline import child_env

from fusioncast.demo import DEMO_CONTRACT as C
from fusioncast.split import TRAIN, split_by_time
from fusioncast.state import prepare
from fusioncast.training import train_forecaster, train_model
from fusioncast.windows import WindowSampler, forecast_origins, gather_inputs, window_origins

pytestmark = pytest.mark.slow


@pytest.fixture
def prepared(demo_frame, small_model_config):
    return prepare(demo_frame, C, split_by_time(demo_frame, C), small_model_config)


def test_same_seed_same_model(prepared, fast_training):
    state, arrays = prepared
    other_seed = fast_training.model_copy(update={"seed": 7})
    (first, fit), (second, refit), (other, _) = (
        train_forecaster(state, arrays, training)
        for training in (fast_training, fast_training, other_seed)
    )
    origins = forecast_origins(arrays, 21)
    a, b, c = (f.predict_windows(arrays, origins) for f in (first, second, other))
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert np.abs(a - c).max() > 1e-4
    assert fit.history == refit.history
    assert first.state is state and first.version is None  # a version comes with registering


def test_every_training_window_is_served_once_per_epoch(prepared, fast_training, monkeypatch):
    """The sampler orders each epoch (seeded); Keras must not reorder its batches (its shuffle
    draws from Python's global ``random``, which a worker's other threads draw from too)."""
    state, arrays = prepared
    served: list[np.ndarray] = []
    batch_origins = WindowSampler.batch_origins

    def recording(self, index):
        origins, text = batch_origins(self, index)
        if self.shuffle:
            served.append(origins)
        return origins, text

    monkeypatch.setattr(WindowSampler, "batch_origins", recording)
    training = fast_training.model_copy(update={"steps_per_epoch": None, "epochs": 2})
    train_model(arrays, state.spec, training.model_copy(update={"patience": 5}))
    windows = window_origins(arrays, state.spec.config.lookback, state.spec.config.horizon, TRAIN)
    batches = math.ceil(len(windows) / training.batch_size)
    epochs = [np.concatenate(served[-2 * batches : -batches]), np.concatenate(served[-batches:])]
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), np.sort(windows))
    assert not np.array_equal(*epochs)  # and each epoch in another order


def test_other_threads_drawing_from_pythons_random_change_nothing(prepared, fast_training):
    """Dask's and Prefect's threads in a worker draw from Python's global ``random`` while a
    fold trains; the fold must train the same model as in a quiet process."""
    state, arrays = prepared
    training = fast_training.model_copy(update={"steps_per_epoch": None, "epochs": 1})
    origins = forecast_origins(arrays, 21)
    quiet = train_forecaster(state, arrays, training)[0].predict_windows(arrays, origins)
    stop = threading.Event()

    def draw() -> None:
        while not stop.is_set():
            random.random()
            time.sleep(0.0005)

    other = threading.Thread(target=draw)
    other.start()
    try:
        busy = train_forecaster(state, arrays, training)[0].predict_windows(arrays, origins)
    finally:
        stop.set()
        other.join()
    np.testing.assert_array_equal(quiet, busy)


def test_early_stopping_keeps_the_best_epoch(prepared, fast_training):
    state, arrays = prepared
    result = train_model(
        arrays, state.spec, fast_training.model_copy(update={"epochs": 6, "patience": 1})
    )
    assert result.epochs_run <= 6
    assert result.best_epoch == int(np.argmin(result.history["val_loss"])) + 1


def test_keep_initial_keeps_the_start_unless_training_beats_it(prepared, fast_training):
    """A model that does not beat its start (here the last value) on validation is not kept."""
    state, arrays = prepared
    training = fast_training.model_copy(update={"epochs": 4, "keep_initial": True})
    trained = train_model(arrays, state.spec, training)
    assert trained.best_epoch > 0  # on the demo data a few epochs beat the last value ...
    # ... but not with a learning rate that throws the weights far from any good fit.
    wild = train_model(
        arrays, state.spec, training.model_copy(update={"epochs": 1, "learning_rate": 1.0})
    )
    assert wild.best_epoch == 0
    origins = forecast_origins(arrays, 21)
    forecast = wild.model.predict(gather_inputs(arrays, origins, 21, 24), verbose=0)
    median = forecast[..., state.spec.config.quantiles.index(0.5)]
    last = np.repeat(arrays.numeric[origins, 0][:, None], median.shape[1], axis=1)
    np.testing.assert_allclose(median, last, atol=1e-5)


RESUMABLE_RUN = textwrap.dedent(
    """
    import sys, time
    from dataclasses import replace
    from pathlib import Path
    from fusioncast.config import TrainingConfig
    from fusioncast.training import train_model
    from tiny_pipeline import tiny_state_and_arrays

    backup, epochs, hidden_units = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    state, arrays = tiny_state_and_arrays()
    config = state.spec.config.model_copy(update={"hidden_units": hidden_units})

    def report(epoch, logs):
        print(f"EPOCH {epoch}", flush=True)
        time.sleep(0.3)

    result = train_model(
        arrays, replace(state.spec, config=config),
        TrainingConfig(epochs=epochs, batch_size=16, steps_per_epoch=3, patience=100),
        backup_dir=backup, on_epoch=report,
    )
    print(f"DONE {result.epochs_run}", flush=True)
    print(f"START {result.start}", flush=True)
    """
)


def _train(backup, epochs: int = 6, hidden_units: int = 8, *, kill_after: int | None = None):
    """Run the resumable training in a child process; SIGKILL it once epoch ``kill_after`` is
    reported. Returns the lines it printed."""
    script = backup.parent / "train.py"
    script.write_text(RESUMABLE_RUN)
    command = [sys.executable, str(script), str(backup), str(epochs), str(hidden_units)]
    if kill_after is None:
        done = subprocess.run(command, capture_output=True, text=True, env=child_env(), timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.splitlines()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=child_env())
    seen = []
    for line in child.stdout:
        seen.append(line.strip())
        if line.startswith(f"EPOCH {kill_after}"):
            child.send_signal(signal.SIGKILL)  # a real kill: no cleanup, no callbacks
            break
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL and seen[-1] == f"EPOCH {kill_after}"
    return seen


def _epochs(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("EPOCH")]


def _backups(root) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def test_killed_training_resumes_after_its_last_completed_epoch(tmp_path):
    backup = tmp_path / "checkpoints"
    _train(backup, kill_after=2)
    [held] = _backups(backup)
    assert (backup / held / "fit.json").is_file()

    again = _train(backup)
    assert _epochs(again) == ["EPOCH 3", "EPOCH 4", "EPOCH 5", "EPOCH 6"]
    assert "DONE 6" in again
    assert f"START resumed from epoch 2 of a killed run (backup {backup / held})" in again
    assert not list(backup.iterdir())  # backup (and its lock file) removed once finished


def test_a_killed_run_is_resumed_only_with_the_same_settings(tmp_path):
    """Fewer epochs than the killed run had done: a fresh fit, not the killed run's weights."""
    backup = tmp_path / "checkpoints"
    _train(backup, kill_after=3)
    [killed] = _backups(backup)

    fewer = _train(backup, epochs=2)
    assert _epochs(fewer) == ["EPOCH 1", "EPOCH 2"] and "DONE 2" in fewer
    assert (
        f"START started fresh: the backup at {backup / killed} was made with other settings; "
        "removed"
    ) in fewer
    assert _backups(backup) == []


def _killed_backup(directory, arrays, spec, training, files):
    """A backup named and stamped for this fit; ``files`` writes what a kill left in it."""
    from fusioncast.backups import backup_name, fit_identity
    from fusioncast.storage import write_json

    identity = fit_identity(arrays, spec, training, shuffle_text=False)
    path = directory / backup_name(identity)
    path.mkdir(parents=True)
    write_json(path / "fit.json", identity)
    (path / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    files(path)
    return path


def _cut_short(path):
    path.write_bytes(path.read_bytes()[:1000])


@pytest.mark.parametrize("damage", ["other_shapes", "cut_short"])
def test_a_backup_keras_cannot_load_starts_fresh(prepared, fast_training, tmp_path, damage):
    from dataclasses import replace

    from fusioncast.model import build_model

    state, arrays = prepared
    spec = state.spec
    weights = "latest.weights.h5"
    if damage == "other_shapes":  # e.g. a folder copied by hand from a run with other settings
        wider = replace(spec, config=spec.config.model_copy(update={"hidden_units": 32}))

        def files(path):
            build_model(wider).save_weights(path / weights)
    else:  # a kill during the write of the first epoch's weights

        def files(path):
            build_model(spec).save_weights(path / weights)
            _cut_short(path / weights)

    path = _killed_backup(tmp_path, arrays, spec, fast_training, files)
    result = train_model(arrays, spec, fast_training, backup_dir=tmp_path)
    assert result.start.startswith(f"started fresh: the backup at {path} could not be loaded")
    assert result.epochs_run == fast_training.epochs == len(result.history["val_loss"])
    assert not path.exists()
    # Starting again from the same state: the same model as a run that never saw the backup.
    clean = train_model(arrays, spec, fast_training)
    assert result.history == clean.history


def test_a_kill_during_the_backup_write_resumes_from_the_epoch_before(
    prepared, fast_training, tmp_path
):
    from fusioncast.model import build_model

    state, arrays = prepared
    training = fast_training.model_copy(update={"epochs": 3})

    def files(path):  # epoch 1 backed up; killed while writing epoch 2's weights over it
        weights = path / "latest.weights.h5"
        build_model(state.spec).save_weights(weights)
        shutil.copy(weights, path / "latest.weights.h5.bkp")
        shutil.copy(path / "training_metadata.json", path / "training_metadata.json.bkp")
        _cut_short(weights)

    path = _killed_backup(tmp_path, arrays, state.spec, training, files)
    result = train_model(arrays, state.spec, training, backup_dir=tmp_path)
    assert result.start == f"resumed from epoch 1 of a killed run (backup {path})"
    assert result.epochs_run == 3 and len(result.history["val_loss"]) == 2


def test_concurrent_runs_never_share_a_backup_directory(tmp_path):
    from fusioncast.backups import claim_backup

    base = tmp_path / "checkpoints" / "fit-abc"
    with claim_backup(base, {"a": 1}) as first, claim_backup(base, {"a": 1}) as second:
        assert first.path == base
        assert second.path != base and second.path.parent == base.parent
        assert second.note == f"started fresh: a live run is training with the backup at {base}"
    assert not second.path.exists()  # a one-off: removed with its run
    # Released (as by a killed run): the next run uses the same directory again.
    with claim_backup(base, {"a": 1}) as again:
        assert again.path == base
        shutil.rmtree(base)  # as a finished fit does
    assert not list(base.parent.iterdir())  # nor is its lock file left behind


def test_stale_backups_are_removed_unless_a_live_run_holds_them(tmp_path):
    from fusioncast.backups import claim_backup, remove_stale_backups

    root = tmp_path / "checkpoints"
    for name in ("fit-old", "fit-live", "fit-mine", "retrain-0123456789abcdef"):
        (root / name).mkdir(parents=True)
        (root / name / "latest.weights.h5").write_bytes(b"weights")
    (root / ".fit-finished.lock").touch()  # left by a run that finished
    with claim_backup(root / "fit-live", {"a": 1}):
        removed = remove_stale_backups(root, keep={"fit-mine"})
        assert sorted(p.name for p in removed) == ["fit-old", "retrain-0123456789abcdef"]
        assert _backups(root) == ["fit-live", "fit-mine"]
    assert sorted(p.name for p in root.glob(".*.lock")) == [".fit-live.lock"]
