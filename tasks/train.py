"""Task: train the model, logging one line per epoch and updating a progress artifact."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from fusioncast.config import TrainingConfig
from fusioncast.forecast import Forecaster
from fusioncast.state import ForecastingState
from fusioncast.tasks import task
from fusioncast.training import TrainingResult, train_forecaster
from fusioncast.windows import SeriesArrays


@task(name="train")
def train(
    state: ForecastingState,
    arrays: SeriesArrays,
    training: TrainingConfig,
    backup_dir: Path,
    *,
    backups_on_this_machine: bool = False,
) -> tuple[Forecaster, TrainingResult]:
    """``backups_on_this_machine``: the epoch backups are on this machine's disk (the workspace
    is on an object store), so a run started again on another machine trains from its first
    epoch; the log says so."""
    logger = get_run_logger()
    progress = create_progress_artifact(0.0, key="training-progress", description="Epochs done")

    def report(epoch: int, logs: dict[str, float]) -> None:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(logs.items()))
        logger.info("epoch %d/%d: %s", epoch, training.epochs, shown)
        update_progress_artifact(progress, 100.0 * epoch / training.epochs)

    forecaster, result = train_forecaster(
        state, arrays, training, backup_dir=backup_dir, on_epoch=report
    )
    update_progress_artifact(progress, 100.0)
    # A backup that was there and not used (other settings, unreadable) deserves attention.
    set_aside = result.start.startswith("started fresh:")
    (logger.warning if set_aside else logger.info)("training %s", result.start)
    if backups_on_this_machine and result.start.startswith("started fresh"):
        logger.info(
            "epoch backups are kept on this machine (%s), not in the workspace on object storage: "
            "a run killed here and started again on another machine trains from its first epoch",
            backup_dir,
        )
    logger.info("best epoch %d of %d", result.best_epoch, result.epochs_run)
    return forecaster, result
