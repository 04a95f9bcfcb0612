"""A validation run: the declared rules (:mod:`fusioncast.validation.rules`) stage by stage.

Stages stop the run after the first one in which a rule failed (the table stage after its first
failed rule). What a failure does to the rows follows the rule's :class:`OnFailure`; under the
``quarantine`` policy per-row and per-series failures set rows aside instead of failing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fusioncast.config import ValidationConfig
from fusioncast.contract import DataContract
from fusioncast.errors import DataValidationError
from fusioncast.timestamps import held_in_utc, split_zone, wall_clock
from fusioncast.validation import coerce
from fusioncast.validation.gx import Suites
from fusioncast.validation.quarantine import Quarantine, revoke
from fusioncast.validation.report import (
    EXCLUDED,
    FILLED,
    QUARANTINED,
    TOLERATED,
    TRUNCATED,
    RuleResult,
    ValidationReport,
    result,
    row_example,
)
from fusioncast.validation.rule import TABLE, Context, OnFailure, Rule, SeriesFinding
from fusioncast.validation.rules import BY_NAME, RULES, stage
from fusioncast.validation.series import SeriesView, fill_targets, infer_frequency, sort_series


class Run:
    def __init__(
        self,
        frame: pd.DataFrame,
        contract: DataContract,
        config: ValidationConfig,
        min_length: int,
        docs_dir: Path | None,
    ) -> None:
        self.frame, self.docs_dir = frame, docs_dir
        self.ctx = Context(contract, config, min_length)
        self.results: list[RuleResult] = []
        self.quarantining = config.policy == "quarantine"
        self.quarantine = Quarantine(len(frame))
        self.excluded: dict[str, int] = {}
        self.n_series = 0
        self.freq: str | None = None
        self.note = ""  # said in the error message when the run stops
        self._suites: Suites | None = None

    # -- bookkeeping --------------------------------------------------------------------------

    def failed(self) -> bool:
        return any(not r.success for r in self.results)

    def add(self, rule_result: RuleResult) -> RuleResult:
        self.results.append(rule_result)
        return rule_result

    def suites(self) -> Suites:
        if self._suites is None:
            self._suites = Suites(self.docs_dir)
        return self._suites

    def build_data_docs(self) -> str | None:
        return self._suites.build_data_docs() if self._suites is not None else None

    def set_aside(self, out: pd.DataFrame, mask: np.ndarray, rule: str, column: str) -> None:
        # the labels of ``out`` are the input row positions (see ``table``)
        self.quarantine.set_aside(out.index.to_numpy()[mask], rule, column)

    def per_row(
        self,
        out: pd.DataFrame,
        rule: str,
        column: str,
        mask: np.ndarray,
        example: object = None,
        expectation: str | None = None,
    ) -> np.ndarray:
        """Record a per-row rule; return the rows set aside (under quarantine)."""
        mask = np.asarray(mask, dtype=bool)
        n = int(mask.sum())
        if n and self.quarantining:
            self.add(result(rule, column, n, example, action=QUARANTINED, expectation=expectation))
            self.set_aside(out, mask, rule, column)
            return mask
        self.add(result(rule, column, n, example, expectation=expectation))
        return np.zeros(len(out), dtype=bool)

    def report(self, out: pd.DataFrame | None) -> ValidationReport:
        report = ValidationReport(
            n_rows=len(self.frame),
            n_series=self.n_series,
            freq=self.freq if out is not None else None,
            timezone=self.ctx.zone,
            results=self.results,
            policy=self.ctx.config.policy,
            n_rows_valid=0 if out is None else len(out),
            n_quarantined=len(self.quarantine) if out is not None else 0,
            excluded_series=self.excluded,
        )
        if out is not None:
            report.quarantined = self.quarantine.rows(self.frame)
        return report

    # -- stages -------------------------------------------------------------------------------

    def run(self) -> pd.DataFrame | None:
        out: pd.DataFrame | None = self.frame
        for step in (self.table, self.types, self.rows, self.series, self.finish):
            out = step(out)
            if out is None or self.failed():
                return None
        return out

    def table(self, frame: pd.DataFrame) -> pd.DataFrame | None:
        for rule in stage("table"):
            finding = rule.check(frame, self.ctx.contract)
            if not self.add(result(rule.name, finding.column or TABLE, finding.count)).success:
                return None
        # Copy-on-write: a lazy copy; assigning columns leaves the caller's frame alone. The
        # RangeIndex labels are the input row positions from here on (for quarantine).
        return frame.reset_index(drop=True)

    def types(self, out: pd.DataFrame) -> pd.DataFrame | None:
        """Every column is checked, so one run names every type problem."""
        contract = self.ctx.contract
        pairs = [(rule, column) for rule in stage("type") for column in rule.columns(contract)]
        first: dict[str, int] = {}
        for i, (_, column) in enumerate(pairs):
            first.setdefault(column, i)
        pairs.sort(key=lambda pair: first[pair[1]])  # stable: a column's rules one after another
        drop = np.zeros(len(out), dtype=bool)
        converted, wrong = set(), set()
        for rule, column in pairs:
            if column in wrong or (finding := rule.check(out[column], self.ctx)) is None:
                continue
            if finding.mask is not None:
                drop |= self.per_row(out, rule.name, column, finding.mask, finding.example)
            else:
                self.add(result(rule.name, column, finding.count, finding.example))
            if finding.values is not None:
                out[column] = finding.values
                converted.add(column)
            elif finding.count:
                wrong.add(column)
        for column in (contract.series_id, *contract.categorical):
            if column is not None and column not in wrong:
                out[column] = coerce.categories(out[column], text=column == contract.series_id)
        if contract.timestamp in converted:  # instants, until the frequency is known
            out[contract.timestamp], self.ctx.zone = split_zone(out[contract.timestamp])
            self.ctx.utc_zone = self.ctx.zone
        if self.failed():
            return None
        return out[~drop] if drop.any() else out

    def rows(self, out: pd.DataFrame) -> pd.DataFrame | None:
        """The GX rows suite: the rules of the table and row stages that have an expectation."""
        ctx = self.ctx
        checks = [
            (rule, column, expectation)
            for rule in RULES
            if rule.stage in ("table", "row") and rule.expectation is not None
            for column in rule.columns(ctx.contract)
            if (expectation := rule.expectation(ctx, column)) is not None
        ]
        gx_results = self.suites().validate("rows", out, [e for *_, e in checks])
        drop = np.zeros(len(out), dtype=bool)
        for (rule, column, expectation), gx_result in zip(checks, gx_results, strict=True):
            details = gx_result.result or {}
            count = int(details.get("unexpected_count") or 0)
            kind = expectation.expectation_type
            if gx_result.success and not count:
                self.add(result(rule.name, column, 0, expectation=kind))
            elif rule.stage != "row" or rule.check is None:  # about the whole column: stop
                observed = details.get("observed_value")
                count = count or (observed if isinstance(observed, int) else 1)
                self.add(result(rule.name, column, count, observed, expectation=kind))
            else:
                mask = np.asarray(rule.check(out, column, ctx), dtype=bool)
                shown = column if rule.shows_value else None
                example = row_example(out, mask, ctx.contract, shown, ctx.utc_zone)
                if rule.on_failure is OnFailure.TRUNCATE and rule.repair is not None:
                    out[column] = rule.repair(out[column], ctx)
                    action = TRUNCATED
                elif rule.on_failure is OnFailure.FILL and gx_result.success:
                    action = FILLED  # within the tolerated share; filled in finish()
                else:
                    drop |= self.per_row(out, rule.name, column, mask, example, kind)
                    continue
                n = int(mask.sum())
                self.add(result(rule.name, column, n, example, action=action, expectation=kind))
        if self.failed():
            return None
        return out[~drop] if drop.any() else out

    def series(self, out: pd.DataFrame) -> pd.DataFrame | None:
        """The GX series suite, over one summary row per series."""
        ctx = self.ctx
        stamp = ctx.contract.timestamp
        if not len(out):
            return self.nothing_left()
        out, codes, names = self.unique_steps(*sort_series(out, ctx.contract))
        if out is None or self.failed():
            return None
        self.n_series = len(names)
        try:
            self.freq = infer_frequency(out, ctx.contract, ctx.utc_zone)
        except DataValidationError as error:
            self.add(result(error.rule, error.column, error.count, error.example))
            self.note = BY_NAME[error.rule].stop_note
            return None
        if ctx.zone is not None and not held_in_utc(self.freq):
            out[stamp] = wall_clock(out[stamp], ctx.zone)
            ctx.utc_zone = None
        view = SeriesView.of(out, codes, names, self.freq, ctx.contract)
        checks = [
            (rule, column, rule.check(view, column, ctx))
            for rule in stage("series")
            if rule.check is not None and rule.expectation is not None
            for column in rule.columns(ctx.contract)
        ]
        for *_, finding in checks:
            view.summary[finding.name] = finding.statistic
        expectations = [rule.expectation(ctx, finding.name) for rule, _, finding in checks]
        gx_results = self.suites().validate("series", view.summary, expectations)
        set_aside = np.zeros(len(names), dtype=bool)
        excluded = np.zeros(len(names), dtype=bool)
        for (rule, column, finding), expectation, gx_result in zip(
            checks, expectations, gx_results, strict=True
        ):
            kind = expectation.expectation_type
            if rule.on_failure is OnFailure.EXCLUDE:
                if self.failed():  # which series remain is known once the others are dealt with
                    return None
                excluded |= self.exclude(view, rule, column, finding, set_aside, kind)
            elif gx_result.success and not finding.hit.any():
                self.add(result(rule.name, column, 0, expectation=kind))
            elif rule.on_failure is OnFailure.TOLERATE and (
                gx_result.success or not finding.bad.any()
            ):
                hit = finding.hit
                count, example = finding.count(hit), finding.example(hit)
                self.add(
                    result(rule.name, column, count, example, action=TOLERATED, expectation=kind)
                )
            else:
                self.per_series(view, rule.name, column, finding, kind)
                set_aside |= finding.bad
        if self.failed():
            return None
        keep = ~(set_aside | excluded)[codes]
        return out if keep.all() else out[keep]

    def unique_steps(
        self, out: pd.DataFrame, codes: np.ndarray, names: np.ndarray
    ) -> tuple[pd.DataFrame | None, np.ndarray, np.ndarray]:
        """The ``key`` rule on the sorted rows, its count per series judged by the GX keys suite;
        the rows set aside are left out (and the series codes taken again)."""
        ctx = self.ctx
        (rule,) = stage("key")
        (column,) = rule.columns(ctx.contract)
        mask = rule.check(out, codes, ctx)
        summary = pd.DataFrame({rule.name: np.bincount(codes[mask], minlength=len(names))})
        expectation = rule.expectation(ctx, rule.name)
        (gx_result,) = self.suites().validate("keys", summary, [expectation])
        kind = expectation.expectation_type
        if gx_result.success and not mask.any():
            self.add(result(rule.name, column, 0, expectation=kind))
            return out, codes, names
        example = row_example(out, mask, ctx.contract, None, ctx.utc_zone)
        drop = self.per_row(out, rule.name, column, mask, example, kind)
        if not drop.any():
            return out, codes, names
        if drop.all():
            return self.nothing_left(), codes, names
        return sort_series(out[~drop], ctx.contract)

    def per_series(
        self, view: SeriesView, rule: str, column: str, finding: SeriesFinding, kind: str
    ) -> None:
        """A series rule broken: fail the run, or quarantine every row of those series."""
        bad = finding.bad
        count, example = finding.count(bad), finding.example(bad)
        if not self.quarantining:
            self.add(result(rule, column, count, example, expectation=kind))
            return
        self.add(result(rule, column, count, example, action=QUARANTINED, expectation=kind))
        self.set_aside(view.frame, bad[view.codes], rule, column)

    def exclude(
        self,
        view: SeriesView,
        rule: Rule,
        column: str,
        finding: SeriesFinding,
        set_aside: np.ndarray,
        kind: str,
    ) -> np.ndarray:
        """Series excluded with a warning (the run stops if none remain); returns them."""
        short = finding.hit & ~set_aside
        if not short.any():
            self.add(result(rule.name, column, 0, expectation=kind))
            return short
        count, example = finding.count(short), finding.example(short)
        if not (~set_aside & ~short).any():
            self.add(result(rule.name, column, count, example, expectation=kind))
            after = " after quarantine" if set_aside.any() else ""
            self.note = rule.stop_note.format(ctx=self.ctx) + after
            return short
        statistic = finding.statistic[short]
        self.excluded.update(
            {str(n): int(v) for n, v in zip(view.names[short], statistic, strict=True)}
        )
        self.add(result(rule.name, column, count, example, action=EXCLUDED, expectation=kind))
        if self.quarantining:
            self.set_aside(view.frame, short[view.codes], rule.name, column)
        return short

    def finish(self, out: pd.DataFrame) -> pd.DataFrame | None:
        if not len(out):
            return self.nothing_left()
        note = self.quarantine.beyond_share(self.ctx.config.max_quarantine_share)
        if note:
            self.note = note
            revoke(self.results)
            return None
        series_id = self.ctx.contract.series_id
        if series_id is not None:  # codes 0 .. S - 1 in row order (frames.series_codes)
            out[series_id] = out[series_id].cat.remove_unused_categories()
        return fill_targets(out, self.ctx.contract).reset_index(drop=True)

    def nothing_left(self) -> None:
        self.note = "quarantine would leave no rows; nothing was quarantined"
        revoke(self.results)
        return None
