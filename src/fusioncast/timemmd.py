"""Conversion of a Time-MMD domain folder into fusioncast's Parquet data contract.

Time-MMD layout (any domain name ``D``)::

    <root>/numerical/<D>/<D>.csv          one row per step: OT (target), start_date, end_date,
                                          a date column (Date, date or MapDate), covariates
    <root>/textual/<D>/<D>_report.csv     text events: start_date, end_date, fact, preds
    <root>/textual/<D>/<D>_search.csv     (either text file may be missing)

The converted frame has one row per step, sorted by time, with columns ``series_id`` (the domain
name), ``timestamp`` (the step's start), ``step_end`` (its last day), the target ``OT``, the numeric
covariates (columns holding text categories are dropped), and up to four text columns
``report_fact``, ``report_preds``, ``search_fact``, ``search_preds``.

Text alignment without leakage: an event is attached to the first step whose end is at or after
the event's end, so a step's text was all available by the end of that step. Events that end
before the first step starts (they describe no step of the series) or after the last step ends are
dropped. Several events of one step are joined in order of their end (then start). Answers that
say nothing (``NA``, ``NA (No relevant information ...)``) are treated as missing text.

Protocol helpers (the published MM-TSFlib protocol for this data): :func:`mmtsf_boundaries` (the
70/10/20 split by step with MM-TSFlib's rounding) and :func:`protocol_for` (lookback and horizons
by sampling frequency).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fusioncast.contract import DataContract
from fusioncast.errors import ConfigError, DatasetLayoutError, DataValidationError
from fusioncast.split import SplitBoundaries, split_at

TARGET = "OT"
SERIES_ID = "series_id"
TIMESTAMP = "timestamp"
STEP_END = "step_end"
TEXT_SOURCES = ("report", "search")
TEXT_FIELDS = ("fact", "preds")
#: Every text column a converted domain may have, ``<source>_<field>``.
TEXT_COLUMNS = tuple(f"{s}_{f}" for s in TEXT_SOURCES for f in TEXT_FIELDS)

#: Columns naming a step's date, in order of preference for the step start.
_START_COLUMNS = ("start_date", "date", "Date", "MapDate", "ValidStart")
_END_COLUMNS = ("end_date", "ValidEnd")
_DATE_LIKE = re.compile(r"(^|_)(date|start|end)($|_)|^mapdate$|^valid(start|end)$", re.I)
#: An answer that carries no information: ``NA``, ``NA.``, ``NA (no relevant ...)``, ``N/A``.
_NOTHING = re.compile(r"^\s*(N/?A)(\b|$)", re.I)
#: A covariate is kept when at least this share of its non-empty values is numeric.
_MIN_NUMERIC_SHARE = 0.9


@dataclass(frozen=True)
class Protocol:
    """Window shape of the published protocol for one sampling frequency."""

    frequency: str  # "monthly", "weekly" or "daily"
    lookback: int
    horizons: tuple[int, ...]


PROTOCOLS = {
    "monthly": Protocol("monthly", 8, (6, 12)),
    "weekly": Protocol("weekly", 36, (12, 48)),
    "daily": Protocol("daily", 96, (48, 96)),
}


@dataclass
class Domain:
    """A converted domain: the frame in the data contract and the contract itself."""

    name: str
    frame: pd.DataFrame
    contract: DataContract
    frequency: str

    @property
    def protocol(self) -> Protocol:
        return PROTOCOLS[self.frequency]

    def with_text(self, columns: tuple[str, ...]) -> Domain:
        """The same domain whose contract uses only the given text columns (``()``: no text)."""
        missing = [c for c in columns if c not in self.frame.columns]
        if missing:
            raise ConfigError(
                f"text column(s) {', '.join(missing)} are not in the converted domain {self.name}"
            )
        contract = self.contract.model_copy(update={"text": tuple(columns)})
        return Domain(self.name, self.frame, contract, self.frequency)

    def write_parquet(self, path: Path) -> Path:
        """Write the frame (every column) as one Parquet file; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        self.frame.to_parquet(tmp, index=False)
        tmp.replace(path)
        return path


def list_domains(root: Path) -> list[str]:
    """Names of the domains under ``root``: every ``numerical/<D>/<D>.csv``, sorted."""
    numerical = Path(root) / "numerical"
    if not numerical.is_dir():
        return []
    return sorted(
        d.name for d in numerical.iterdir() if d.is_dir() and (d / f"{d.name}.csv").is_file()
    )


def convert_domain(root: Path, name: str) -> Domain:
    """Read domain ``name`` under ``root`` and convert it (see the module docstring)."""
    root = Path(root)
    numeric_path = root / "numerical" / name / f"{name}.csv"
    if not numeric_path.is_file():
        raise DatasetLayoutError(f"{numeric_path} not found: numerical/<D>/<D>.csv is expected")
    steps, covariates = read_numeric(numeric_path)
    frame = steps.copy()
    frame.insert(0, SERIES_ID, name)
    present = []
    for source in TEXT_SOURCES:
        path = root / "textual" / name / f"{name}_{source}.csv"
        if not path.is_file():
            continue
        aligned = align_events(read_events(path), frame[TIMESTAMP], frame[STEP_END])
        for field in TEXT_FIELDS:
            column = f"{source}_{field}"
            frame[column] = pd.Series(aligned[field], dtype="string").astype(object)
            frame[column] = frame[column].where(frame[column].notna(), None)
            present.append(column)
    contract = DataContract(
        series_id=SERIES_ID,
        timestamp=TIMESTAMP,
        target=TARGET,
        numeric=tuple(covariates),
        text=tuple(present),
    )
    return Domain(name, frame.reset_index(drop=True), contract, step_frequency(frame))


def read_numeric(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Steps of a numerical CSV sorted by start, non-finite targets dropped.

    Returns the frame (``timestamp``, ``step_end``, ``OT``, covariates) and the covariate names.
    """
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    raw.columns = [str(c).strip() for c in raw.columns]
    raw = raw.loc[:, ~pd.Index(_unmangled(raw.columns)).duplicated()]
    raw.columns = _unmangled(raw.columns)
    if TARGET not in raw.columns:
        raise DatasetLayoutError(f"no {TARGET} column in {path}")
    start = _first_dates(raw, _START_COLUMNS)
    if start is None:
        raise DatasetLayoutError(
            f"no date column in {path} (one of {', '.join(_START_COLUMNS)} is expected)"
        )
    end = _first_dates(raw, _END_COLUMNS)
    target = pd.to_numeric(raw[TARGET].str.strip(), errors="coerce").astype(np.float64)
    frame = pd.DataFrame({TIMESTAMP: start, STEP_END: end, TARGET: target})
    covariates = []
    for column in raw.columns:
        if column == TARGET or _DATE_LIKE.search(column) or column in frame.columns:
            continue
        values = _numeric_or_none(raw[column])
        if values is not None:
            frame[column] = values
            covariates.append(column)
    frame = frame[np.isfinite(frame[TARGET]) & frame[TIMESTAMP].notna()]
    frame = frame.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)
    frame = _resolve_duplicates(frame)
    if frame[STEP_END].isna().any():
        # No end column: a step ends the day before the next one starts (the last: same length).
        following = frame[TIMESTAMP].shift(-1)
        last_length = frame[TIMESTAMP].diff().iloc[-1] if len(frame) > 1 else pd.Timedelta(0)
        following.iloc[-1] = frame[TIMESTAMP].iloc[-1] + last_length
        derived = following - pd.Timedelta(days=1)
        frame[STEP_END] = frame[STEP_END].fillna(derived)
    frame[STEP_END] = frame[[TIMESTAMP, STEP_END]].max(axis=1).cummax()
    return frame, covariates


def read_events(path: Path) -> pd.DataFrame:
    """Text events of one CSV: ``start``, ``end`` (datetimes) and cleaned ``fact``, ``preds``."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    raw.columns = [str(c).strip() for c in raw.columns]
    events = pd.DataFrame(
        {
            "start": _dates(raw["start_date"]) if "start_date" in raw else pd.NaT,
            "end": _dates(raw["end_date"]) if "end_date" in raw else pd.NaT,
        }
    )
    if "end_date" not in raw:
        events["end"] = events["start"]
    events["end"] = events["end"].fillna(events["start"])
    events["start"] = events["start"].fillna(events["end"])
    for field in TEXT_FIELDS:
        column = raw[field] if field in raw else pd.Series("", index=raw.index)
        events[field] = pd.Series(
            [clean_text(v, split=field == "preds") for v in column], index=raw.index, dtype=object
        )
    events = events[events["end"].notna()]
    return events.sort_values(["end", "start"], kind="stable").reset_index(drop=True)


def align_events(
    events: pd.DataFrame, step_start: pd.Series, step_end: pd.Series
) -> dict[str, list[str | None]]:
    """Text per step: each event goes to the first step whose end is at or after its end.

    Events ending before the first step's start or after the last step's end are dropped.
    Returns, per text field, one joined text (or None) per step.
    """
    ends = pd.to_datetime(step_end).to_numpy()
    n = len(ends)
    out: dict[str, list[str | None]] = {field: [None] * n for field in TEXT_FIELDS}
    if n == 0 or events.empty:
        return out
    if np.any(np.diff(ends) < np.timedelta64(0)):
        raise DataValidationError("time_mmd_steps", STEP_END, 1, "step ends are not sorted")
    event_end = events["end"].to_numpy()
    step = np.searchsorted(ends, event_end, side="left")
    keep = (step < n) & (event_end >= pd.to_datetime(step_start).to_numpy()[0])
    for field in TEXT_FIELDS:
        texts = events[field].to_numpy(dtype=object)
        joined: dict[int, list[str]] = {}
        for row, text in zip(step[keep], texts[keep], strict=True):
            if isinstance(text, str) and text:
                joined.setdefault(int(row), []).append(text)
        for row, parts in joined.items():
            out[field][row] = "\n".join(parts)
    return out


def clean_text(value: object, *, split: bool = False) -> str | None:
    """The text, or None when it says nothing; with ``split``, ``;``-separated parts each."""
    if not isinstance(value, str):
        return None
    parts = value.split(";") if split else [value]
    kept = [p.strip() for p in parts if p.strip() and not _NOTHING.match(p)]
    return "; ".join(kept) if kept else None


def step_frequency(frame: pd.DataFrame) -> str:
    """``monthly``, ``weekly`` or ``daily`` from the median distance between step starts."""
    if len(frame) < 2:
        raise DataValidationError("time_mmd_steps", TIMESTAMP, len(frame), "need 2+ steps")
    days = float(frame[TIMESTAMP].diff().dt.total_seconds().median()) / 86_400
    if days >= 25:
        return "monthly"
    if days >= 5:
        return "weekly"
    if days >= 0.9:
        return "daily"
    raise DataValidationError(
        "time_mmd_frequency", TIMESTAMP, 1, f"steps of {days:.2f} days have no protocol"
    )


def protocol_for(domain: Domain) -> Protocol:
    return PROTOCOLS[domain.frequency]


def mmtsf_boundaries(
    frame: pd.DataFrame,
    contract: DataContract,
    train_fraction: float = 0.7,
    test_fraction: float = 0.2,
) -> SplitBoundaries:
    """Cut-offs of the MM-TSFlib split of a single series by step count.

    ``n_train = int(n * 0.7)``, ``n_test = int(n * 0.2)``, ``n_validation = n - n_train - n_test``
    (fusioncast's own :func:`~fusioncast.split.split_by_time` rounds instead of truncating).
    """
    times = np.sort(pd.to_datetime(frame[contract.timestamp]).unique())
    n = len(times)
    n_train, n_test = int(n * train_fraction), int(n * test_fraction)
    n_validation = n - n_train - n_test
    if min(n_train, n_test, n_validation) < 1:
        raise DataValidationError("split_enough_steps", contract.timestamp, n, "too few steps")
    return split_at(
        frame,
        contract,
        train_end=pd.Timestamp(times[n_train - 1]),
        validation_end=pd.Timestamp(times[n_train + n_validation - 1]),
    )


def _regular_step(starts: pd.Series) -> pd.DateOffset | pd.Timedelta:
    """The most common distance between consecutive step starts (whole months for monthly)."""
    gaps = starts.drop_duplicates().diff().dropna()
    if gaps.empty:
        return pd.Timedelta(days=1)
    common = gaps.mode().iloc[0]
    if pd.Timedelta(days=28) <= common <= pd.Timedelta(days=31):
        return pd.DateOffset(months=1)
    return common


def _resolve_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep every row of steps that share a start (Health_US dates ISO week 53 and week 1 alike).

    The protocol counts rows, so a repeated row stays a step of its own: it moves one regular step
    later when that slot is free and lies before the next step (the file skipped it), otherwise
    halfway to the next distinct start. Its end is kept, so its text is aligned as before.
    """
    repeated = frame[TIMESTAMP].duplicated(keep="first").to_numpy()
    if not repeated.any():
        return frame
    step = _regular_step(frame[TIMESTAMP])
    starts = list(frame[TIMESTAMP])
    taken = set(starts)
    for i in np.flatnonzero(repeated):
        following = next((t for t in starts[i + 1 :] if t > starts[i]), starts[i] + step)
        moved = starts[i] + step
        if moved in taken or moved >= following:
            moved = starts[i] + (following - starts[i]) / 2
        taken.add(moved)
        starts[i] = moved
    out = frame.assign(**{TIMESTAMP: pd.to_datetime(starts)})
    return out.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)


def _unmangled(columns: pd.Index) -> list[str]:
    """Column names with pandas' duplicate suffixes (``date.1``) removed."""
    return [re.sub(r"\.\d+$", "", str(c)) for c in columns]


def _dates(values: pd.Series) -> pd.Series:
    text = values.astype(str).str.strip()
    compact = text.str.fullmatch(r"\d{8}")
    parsed = pd.to_datetime(text.where(~compact), errors="coerce", format="mixed")
    if compact.any():
        parsed = parsed.fillna(
            pd.to_datetime(text.where(compact), errors="coerce", format="%Y%m%d")
        )
    return parsed.astype("datetime64[ns]")


def _first_dates(raw: pd.DataFrame, names: tuple[str, ...]) -> pd.Series | None:
    found = None
    for name in names:
        if name in raw.columns:
            parsed = _dates(raw[name])
            found = parsed if found is None else found.fillna(parsed)
    return found


def _numeric_or_none(values: pd.Series) -> pd.Series | None:
    text = values.astype(str).str.strip()
    present = text.ne("") & ~text.str.upper().isin(["NA", "NAN", "NULL", "X"])
    numbers = pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce")
    if present.sum() == 0:
        return None
    share = float(numbers[present].notna().mean())
    if share < _MIN_NUMERIC_SHARE:
        return None
    return numbers.astype(np.float64).where(np.isfinite(numbers))
