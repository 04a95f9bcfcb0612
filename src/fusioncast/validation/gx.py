"""Great Expectations (GX Core 1.x): the suites of a run, and their Data Docs.

GX is imported on first use: its import takes seconds.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pyarrow as pa

DATA_DOCS_DIR = "data_docs"
_ORDER_KEY = "fusioncast_order"


def expectations() -> ModuleType:
    """``great_expectations.expectations``, imported on first use."""
    import great_expectations.expectations as gxe

    return gxe


def warning() -> Any:
    """The severity of an expectation whose failure does not stop the run."""
    from great_expectations.expectations.expectation import FailureSeverity

    return FailureSeverity.WARNING


class Suites:
    """One ephemeral GX context per validation run, with a local Data Docs site."""

    SITE = "local_site"

    def __init__(self, docs_dir: Path | None) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.execution_engine import pandas_execution_engine

        # GX fingerprints every in-memory batch under HASH_THRESHOLD bytes (1 GB) with an md5 of
        # pd.util.hash_pandas_object, for a batch marker nothing reads: 40 % of validation's
        # time at 4 M rows. The data's own fingerprint is fusioncast.frames.fingerprint.
        if hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
            pandas_execution_engine.HASH_THRESHOLD = 0

        self.gx = gx
        self.docs_dir = docs_dir
        # The context must exist before any suite: ExpectationSuite.add_expectation looks up the
        # active context (DataContextRequiredError otherwise).
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        if docs_dir is not None:  # the ephemeral context's own site is in a temporary directory
            self.context.update_data_docs_site(
                self.SITE,
                {
                    "class_name": "SiteBuilder",
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(Path(docs_dir).resolve()),
                    },
                },
            )
        self.source = self.context.data_sources.add_pandas("fusioncast")
        self.ran = False

    def validate(self, name: str, frame: pd.DataFrame, expectations: list[Any]) -> list[Any]:
        """Run ``expectations`` on ``frame`` (stored for Data Docs); results in the given order."""
        gx = self.gx
        suite = gx.ExpectationSuite(name=f"fusioncast_{name}")
        for order, expectation in enumerate(expectations):
            expectation.meta = {_ORDER_KEY: order}  # GX returns results grouped by column
            suite.add_expectation(expectation)
        suite = self.context.suites.add(suite)
        batch = self.source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=f"fusioncast_{name}", data=batch, suite=suite)
        )
        # GX takes a whole-frame copy per expectation (``df[df[column].notnull()]`` for a column
        # map, ``dropna`` for compound uniqueness); copy-on-write makes those copies lazy, so
        # the suite holds the frame once, not twice.
        with pd.option_context("mode.copy_on_write", True):
            validation = definition.run(
                batch_parameters={"dataframe": frame}, result_format="BASIC"
            )
        self.ran = True
        # the suite's temporaries (Arrow strings among them) go back to the system, not to
        # Arrow's pool for later: the validated frame is held while the rest of the run goes on
        pa.default_memory_pool().release_unused()
        results = sorted(validation.results, key=lambda r: r.expectation_config.meta[_ORDER_KEY])
        for result in results:
            if result.exception_info and result.exception_info.get("raised_exception"):
                config = result.expectation_config
                raise RuntimeError(
                    f"great_expectations failed to evaluate {config.type} {config.kwargs}: "
                    f"{result.exception_info.get('exception_message')}"
                )
        return results

    def build_data_docs(self) -> str | None:
        if self.docs_dir is None or not self.ran:
            return None
        self.context.build_data_docs(site_names=[self.SITE])
        return str(self.docs_dir / "index.html")
