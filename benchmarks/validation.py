"""Validation time against the time to read the same Parquet data, at 1 and 10 million rows.

The data: ``series`` daily series of equal length (1,000 x 1,000 and 10,000 x 1,000 steps by
default) with a float target, two numeric covariates, a static categorical (100 stores) and a
sparse text column (a note on about one row in twenty), written as one Parquet file to a
temporary directory. Each size is read with :func:`fusioncast.validation.read_dataset` and
validated with :func:`fusioncast.validation.validate_frame` (fail policy, report and GX Data Docs
written to the temporary directory, as in a flow run). Prints the median of ``--repeats`` runs
for 1 million rows and of ``--repeats-large`` runs for 10 million.

    python benchmarks/validation.py [--sizes 1000000 10000000] [--repeats 3] [--repeats-large 1]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from fusioncast.config import ValidationConfig  # noqa: E402
from fusioncast.contract import DataContract  # noqa: E402
from fusioncast.validation import read_dataset, validate_frame  # noqa: E402

CONTRACT = DataContract(
    series_id="series_id",
    timestamp="timestamp",
    target="target",
    numeric=("price", "promo"),
    static_categorical=("store",),
    text=("note",),
    freq="D",
)
STEPS = 1_000
PROMOTIONS = np.array(["none", "flyer", "display", "coupon"], dtype=object)
NOTES = np.array(
    [
        "Street festival announced next to the store in 4 days",
        "Road works will close the main entrance on Friday",
        "New shelf layout in aisle 3",
        "Heatwave forecast for the region 3 days from now",
    ],
    dtype=object,
)


def write_synthetic(
    path: Path, n_rows: int, *, steps: int = STEPS, seed: int = 0, promotion: bool = False
) -> Path:
    """``n_rows // steps`` daily series of ``steps`` rows as one Parquet file (row groups of 1M);
    with ``promotion``, a per-step categorical column of 4 values too."""
    rng = np.random.default_rng(seed)
    n_series = n_rows // steps
    writer = None
    chunk_series = max(1, 1_000_000 // steps)
    start = np.datetime64("2020-01-01", "ns")
    stamps = start + np.arange(steps) * np.timedelta64(1, "D")
    for first in range(0, n_series, chunk_series):
        count = min(chunk_series, n_series - first)
        rows = count * steps
        ids = np.array([f"series-{i:06d}" for i in range(first, first + count)], dtype=object)
        noted = rng.random(rows) < 0.05
        note = np.full(rows, None, dtype=object)
        note[noted] = NOTES[rng.integers(0, len(NOTES), int(noted.sum()))]
        table = pa.table(
            {
                "series_id": pa.array(np.repeat(ids, steps), pa.string()),
                "timestamp": pa.array(np.tile(stamps, count)),
                "target": rng.gamma(2.0, 50.0, rows),
                "price": rng.normal(3.0, 0.5, rows),
                "promo": (rng.random(rows) < 0.1).astype(np.float64),
                "store": pa.array(
                    np.repeat([f"S{(first + i) % 100:02d}" for i in range(count)], steps),
                    pa.string(),
                ),
                "note": pa.array(note, pa.string()),
            }
        )
        if promotion:
            kinds = PROMOTIONS[rng.integers(0, len(PROMOTIONS), rows)]
            table = table.append_column("promotion", pa.array(kinds, pa.string()))
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=1_000_000)
    assert writer is not None
    writer.close()
    return path


def timed(function, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        result = None
        gc.collect()
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=3, help="runs per size below 10M rows")
    parser.add_argument("--repeats-large", type=int, default=1, help="runs at 10M rows and more")
    parser.add_argument("--no-docs", action="store_true", help="skip the GX Data Docs")
    args = parser.parse_args()
    config = ValidationConfig(data_docs=not args.no_docs)

    # GX is imported on first use inside validate_frame; import it here so that no size pays it.
    import great_expectations  # noqa: F401

    rows = []
    with tempfile.TemporaryDirectory(prefix="fusioncast-bench-") as tmp:
        for size in args.sizes:
            path = write_synthetic(Path(tmp) / f"rows-{size}.parquet", size)
            repeats = args.repeats if size < 10_000_000 else args.repeats_large
            read_s, frame = timed(lambda p=path: read_dataset(p, CONTRACT), repeats)
            report_dir = Path(tmp) / f"report-{size}"
            validate_s, (_, report) = timed(
                lambda f=frame, d=report_dir: validate_frame(
                    f, CONTRACT, min_length=28, config=config, report_dir=d
                ),
                repeats,
            )
            assert report.success, report.failures
            rows.append((size, frame[CONTRACT.series_id].nunique(), repeats, read_s, validate_s))
            del frame
            print(
                f"{size:>12,d} rows: read {read_s:6.2f} s, validate {validate_s:6.2f} s", flush=True
            )

    print()
    print(f"| {'rows':>12} | {'series':>7} | runs | read Parquet (s) | validate (s) | ratio |")
    print(f"|{'-' * 14}|{'-' * 9}|------|------------------|--------------|-------|")
    for size, series, repeats, read_s, validate_s in rows:
        print(
            f"| {size:>12,d} | {series:>7,d} | {repeats:>4d} | {read_s:>16.2f} | "
            f"{validate_s:>12.2f} | {validate_s / read_s:>5.1f} |"
        )
    print(f"\nmedian of runs; {os.cpu_count()} CPU(s); python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
