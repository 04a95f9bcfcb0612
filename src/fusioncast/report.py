"""The evaluation report for people: a metrics Parquet file and PNG plots in a run's report folder.

- ``metrics.parquet``: one row per (model, series, horizon step), see :mod:`fusioncast.evaluate`.
- ``forecast_best.png`` / ``forecast_worst.png``: for the few series where the model's test MSE is
  lowest / highest, the last test window: the history it read, what happened, the median forecast
  and its central quantile band.
- ``error_by_horizon.png``: test MSE per horizon step of the model, its ablations and baselines
  (and the reference forecasts, dashed).
- ``limit.json`` (when the data carries both knowable limits, see :mod:`fusioncast.references`):
  the share of the knowable text gain the model captures and its MSE over the limit's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusioncast import storage
from fusioncast.contract import MetricColumn as M
from fusioncast.evaluate import MODEL, Evaluation
from fusioncast.metrics import central_intervals

METRICS_FILE = "metrics.parquet"
LIMIT_FILE = "limit.json"
LIMIT_VERSION = 1
BEST_PLOT = "forecast_best.png"
WORST_PLOT = "forecast_worst.png"
HORIZON_PLOT = "error_by_horizon.png"


def ranked_series(metrics: pd.DataFrame, model: str = MODEL) -> list[str]:
    """Series ids from the lowest to the highest test MSE of ``model``."""
    rows = metrics[metrics[M.MODEL] == model]
    return list(rows.groupby(M.SERIES_ID)[M.MSE].mean().sort_values(kind="stable").index)


def write_metrics(metrics: pd.DataFrame, path: Path) -> Path:
    """Write the metrics table atomically (:func:`fusioncast.storage.write_parquet`)."""
    return storage.write_parquet(path, metrics)


def write_report(evaluation: Evaluation, directory: Path, *, n_series: int = 3) -> dict[str, Path]:
    """Write the metrics table and the plots under ``directory``; returns their paths by name."""
    directory = storage.location(directory)
    ranked = ranked_series(evaluation.metrics)
    n = min(n_series, len(ranked))
    paths = {
        "metrics": write_metrics(evaluation.metrics, directory / METRICS_FILE),
        "best series": plot_series(
            evaluation, ranked[:n], directory / BEST_PLOT, "lowest test MSE"
        ),
        "worst series": plot_series(
            evaluation, ranked[::-1][:n], directory / WORST_PLOT, "highest test MSE"
        ),
        "error by horizon": plot_error_by_horizon(evaluation.metrics, directory / HORIZON_PLOT),
    }
    if evaluation.limit is not None:
        # NaN (nothing was knowable from the text) as null: JSON has no NaN
        figures = {k: None if v != v else v for k, v in evaluation.limit.items()}
        paths["knowable limit"] = storage.write_json(
            directory / LIMIT_FILE, {"version": LIMIT_VERSION, **figures}
        )
    return paths


def limit_summary(limit: dict[str, Any]) -> str:
    """One line of :attr:`Evaluation.limit`: the share of the knowable text gain and the MSE
    ratio, and the windows they are over."""
    return (
        f"share of the knowable text gain captured {limit['text_gain_share']:.3f}, "
        f"MSE over the limit's {limit['mse_over_limit']:.3f} (on {limit['n_windows']} of "
        f"{limit['test_windows']} test windows)"
    )


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_series(evaluation: Evaluation, series_ids: list[str], path: Path, label: str) -> Path:
    """Last test window of each series: history, actual, median forecast and quantile band."""
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(series_ids), 1, figsize=(9, 2.6 * max(1, len(series_ids))), squeeze=False
    )
    levels = evaluation.quantile_levels
    intervals = central_intervals(levels)
    for ax, sid in zip(axes[:, 0], series_ids, strict=True):
        windows = np.flatnonzero(evaluation.series.astype(str) == sid)
        b = int(windows[-1])
        times, values = evaluation.history[sid]
        position = int(np.searchsorted(times, evaluation.origin_times[b]))
        horizon = evaluation.actual.shape[1]
        past = slice(max(0, position - 3 * horizon), position + 1)
        future = times[position + 1 : position + 1 + horizon]
        ax.plot(times[past], values[past], color="0.45", lw=1.2, label="history")
        joined = times[position : position + 1 + horizon]  # from the origin on
        last = values[position : position + 1]
        ax.plot(joined, np.r_[last, evaluation.actual[b]], color="black", lw=1.6, label="actual")
        ax.plot(
            joined,
            np.r_[last, evaluation.forecasts[MODEL][b]],
            color="tab:blue",
            lw=1.6,
            label="forecast",
        )
        if intervals:
            percent, lower, upper = intervals[0]
            ax.fill_between(
                future,
                evaluation.quantiles[b, :, levels.index(lower)],
                evaluation.quantiles[b, :, levels.index(upper)],
                color="tab:blue",
                alpha=0.2,
                label=f"{percent}% interval",
            )
        metrics = evaluation.metrics
        rows = (metrics[M.MODEL] == MODEL) & (metrics[M.SERIES_ID] == sid)
        mse = float(metrics.loc[rows, M.MSE].mean())
        ax.set_title(f"{sid}: test MSE {mse:.3f} (scaled)", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper left", ncols=4)
    fig.suptitle(f"Last test window, series with the {label}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_error_by_horizon(metrics: pd.DataFrame, path: Path) -> Path:
    """Test MSE (scaled) per horizon step, one line per candidate."""
    plt = _pyplot()
    weighted = metrics.assign(se=metrics[M.MSE] * metrics[M.N_WINDOWS])
    table = weighted.groupby([M.MODEL, M.HORIZON_STEP])[["se", M.N_WINDOWS]].sum()
    mse = (table["se"] / table[M.N_WINDOWS]).unstack(M.MODEL)
    references = set(metrics.loc[metrics[M.REFERENCE], M.MODEL]) if M.REFERENCE in metrics else ()
    fig, ax = plt.subplots(figsize=(8, 4))
    for name in mse.columns:
        ax.plot(
            mse.index,
            mse[name],
            marker="o",
            ms=3,
            lw=2.2 if name == MODEL else 1.2,
            ls="--" if name in references else "-",
            label=name,
        )
    ax.set_xlabel("horizon step")
    ax.set_ylabel("test MSE (z-scored target)")
    ax.set_title("Error by horizon step", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    try:
        return storage.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        _pyplot().close(fig)
