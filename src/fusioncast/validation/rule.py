"""What a rule is (:class:`Rule`), what its check is given (:class:`Context`) and what it
returns (:class:`Finding`, :class:`SeriesFinding`). The rules themselves are declared in
:mod:`fusioncast.validation.rules`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import pandas as pd

from fusioncast.config import ValidationConfig
from fusioncast.contract import DataContract

TABLE = "*"  # the "column" of rules about the whole table


@dataclass
class Context:
    """The run a check belongs to: contract, configuration and what earlier stages found."""

    contract: DataContract
    config: ValidationConfig
    min_length: int = 1
    #: the time zone of tz-aware timestamps (they are checked as instants, held as UTC)
    zone: str | None = None
    #: the zone while the timestamps are held as UTC instants (None once they are wall-clock)
    utc_zone: str | None = None

    @property
    def key(self) -> list[str]:
        """The columns that identify a row: series id (if any) and timestamp."""
        return [c for c in (self.contract.series_id, self.contract.timestamp) if c]

    def now(self) -> pd.Timestamp:
        """ "Now" as the timestamps are held: a UTC instant for tz-aware input, else wall-clock."""
        if self.zone is not None:
            return self.config.current_instant().tz_convert("UTC").tz_localize(None)
        return self.config.current_time()


@dataclass
class Finding:
    """What a table or type check found.

    ``count`` counts a problem of the whole column (or table): the run stops. ``mask`` marks the
    offending rows of a per-row problem. ``values`` are the column's values converted (None:
    unchanged, or not convertible); ``column`` names the offending columns of a table check.
    """

    count: int = 0
    example: object = None
    mask: np.ndarray | None = None
    values: pd.Series | None = None
    column: str | None = None


@dataclass
class SeriesFinding:
    """What a series check found, one entry per series (in the order of the sorted series ids).

    ``statistic`` (named ``name``) is the per-series value the rule's GX expectation bounds.
    ``hit`` marks the series that break the rule at all, ``beyond`` those beyond what the
    configuration tolerates (``hit`` itself for rules that tolerate nothing); ``weight`` is what
    each series adds to the rule's count; ``example(series_mask)`` renders the first of them.
    """

    name: str
    statistic: np.ndarray
    hit: np.ndarray
    weight: np.ndarray
    example: Callable[[np.ndarray], str]
    beyond: np.ndarray | None = None

    @property
    def bad(self) -> np.ndarray:
        return self.hit if self.beyond is None else self.beyond

    def count(self, series_mask: np.ndarray) -> int:
        return int(self.weight[series_mask].sum())


Stage = Literal["read", "table", "type", "row", "key", "series", "forecast"]


class OnFailure(StrEnum):
    """What happens to what broke a rule (the values are the README's words)."""

    STOP = "run stops"
    PER_ROW = "per row"
    FILL = "per row (within the tolerated share: filled)"
    TRUNCATE = "truncated and counted"
    PER_SERIES = "per series"
    TOLERATE = "per series (within the tolerated share: counted)"
    EXCLUDE = "series excluded with a warning; run stops if none remain"
    IGNORE = "run stops; other files of a directory are left out, counted (`ignored`)"


#: Column roles (every role of the contract, and groups of them): the README's words and the
#: columns of a contract they stand for.
ROLES: dict[str, tuple[str, Callable[[DataContract], list[str]]]] = {
    "table": ("`*`", lambda c: [TABLE]),
    "named": ("the column(s)", lambda c: [TABLE]),  # the offending ones, else the table
    "contract": ("contract columns", lambda c: c.all_columns),
    "series_id": ("series id", lambda c: [c.series_id] if c.series_id else []),
    "series": ("series id (timestamp without one)", lambda c: [c.series_id or c.timestamp]),
    "timestamp": ("timestamp", lambda c: [c.timestamp]),
    "key": (
        "series id, timestamp",
        lambda c: [", ".join(filter(None, [c.series_id, c.timestamp]))],
    ),
    "target": ("target", lambda c: [c.target]),
    "numeric": ("numeric covariates", lambda c: list(c.numeric)),
    "categorical": ("categorical columns", lambda c: list(c.categorical)),
    "static_categorical": ("static categorical columns", lambda c: list(c.static_categorical)),
    "dynamic_categorical": ("dynamic categorical columns", lambda c: list(c.dynamic_categorical)),
    "text": ("text columns", lambda c: list(c.text)),
    "forecast": ("`forecast` or the first quantile column with one", lambda c: []),
}


@dataclass(frozen=True)
class Rule:
    """One rule: its name, the column roles it reports on, what it checks (``checks``, for
    people), what happens on failure, its check and its GX expectation.

    What ``check`` is given and returns depends on the stage:

    - ``read``: none here; :mod:`fusioncast.validation.reading` raises the rule;
    - ``table``: ``check(frame, contract) -> Finding``; the first rule failed stops the run;
    - ``type``: ``check(values, ctx) -> Finding | None`` per column (None: does not apply),
      converting the values; a column's rules run one after another on what the previous one
      handed on;
    - ``row``: ``check(frame, column, ctx)`` marks the offending rows; computed only when the
      GX rows suite reports some. Without a check (and for a ``table`` rule with an
      expectation) the run stops on the count GX reports;
    - ``key``: ``check(frame, codes, ctx)`` marks the offending rows of the frame sorted by
      (series, timestamp) (``codes``: each row's series), before the series rules; the GX
      expectation bounds their count per series (a summary column named after the rule);
    - ``series``: ``check(view, column, ctx) -> SeriesFinding`` over the series summary;
    - ``forecast``: none here; checked where the forecast is made.

    ``expectation(ctx, column)`` builds the GX expectation (for a series rule ``column`` is the
    summary column its finding names), or returns None when the run does not check the rule.
    ``shows_value``: a row's example shows the offending value. ``repair`` (``TRUNCATE``) turns
    offending values into acceptable ones. ``note`` is added to the README's on-failure words;
    ``stop_note`` is said when the rule stops the run (formatted with ``ctx``).
    """

    name: str
    stage: Stage
    roles: tuple[str, ...]
    checks: str
    on_failure: OnFailure = OnFailure.STOP
    check: Callable[..., Any] | None = None
    expectation: Callable[[Context, str], Any] | None = None
    shows_value: bool = False
    repair: Callable[[pd.Series, Context], pd.Series] | None = None
    note: str = ""
    stop_note: str = ""

    def columns(self, contract: DataContract) -> list[str]:
        """The columns the rule reports on, in order."""
        return [column for role in self.roles for column in ROLES[role][1](contract)]

    def readme_row(self) -> str:
        column = ", ".join(ROLES[role][0] for role in self.roles)
        on_failure = self.on_failure.value + (f" ({self.note})" if self.note else "")
        return f"| `{self.name}` | {column} | {self.checks} | {on_failure} |"
