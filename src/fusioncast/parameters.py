"""Run parameters: pydantic models that the CLI reads and the Prefect UI shows as forms."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fusioncast import storage
from fusioncast.config import (
    BacktestConfig,
    BaselineConfig,
    ModelConfig,
    PromotionConfig,
    TaskRunnerConfig,
    TrainingConfig,
    ValidationConfig,
)
from fusioncast.contract import DataContract
from fusioncast.demo import DEMO_CONTRACT
from fusioncast.errors import ConfigError
from fusioncast.presets import CANDIDATES, PRESETS, apply_preset, candidate

PresetName = Literal[tuple(PRESETS)]


def readable_data_path(path: str) -> str:
    """``path`` when pyarrow, which reads the input, knows its URL scheme (a local path, file://,
    s3://, gs://, abfs://, hdfs://...); an unknown scheme is refused before any run starts."""
    scheme = path.split("://", 1)[0] if "://" in path else ""
    if scheme and scheme != "file":
        import pyarrow as pa
        import pyarrow.fs as pafs

        try:
            pafs.FileSystem.from_uri(f"{scheme}://")  # the scheme alone: nothing is contacted
        except pa.ArrowInvalid as error:
            if "Unrecognized filesystem type" in str(error):
                raise ValueError(
                    f"{path!r}: no {scheme}:// file system for the input (pyarrow reads local "
                    "paths, file://, s3://, gs://, abfs:// and hdfs:// URLs)"
                ) from None
        except Exception:  # noqa: BLE001  known, but not usable here: reading will say why
            pass
    return path


class Workspace(BaseModel):
    """Where a pipeline keeps its state: ``models/`` (registry), ``forecasts/``, ``reports/``."""

    model_config = ConfigDict(extra="forbid")

    root: str = Field(
        "fusioncast-output",
        description=(
            "Folder of models, forecasts and reports: a local path, or a URL of an object store "
            "(s3://bucket/prefix, gs://..., abfs://...) whose credentials and endpoint come from "
            "the environment."
        ),
    )

    @field_validator("root")
    @classmethod
    def _known_scheme(cls, root: str) -> str:
        storage.location(root)  # an unknown scheme is refused before any run starts
        return root

    @property
    def path(self) -> Path:
        """The root itself (a local ``Path``, or an object store's path object)."""
        return storage.location(self.root)

    @property
    def remote(self) -> bool:
        """True when the workspace is on an object store."""
        return storage.is_remote(self.path)

    @property
    def models(self) -> Path:
        return self.path / "models"

    @property
    def forecasts(self) -> Path:
        return self.path / "forecasts"

    def reports(self, run_id: str) -> Path:
        return self.path / "reports" / run_id

    @property
    def scratch(self) -> Path:
        """Local files that need no sharing: the root itself on a local disk; for a workspace on
        an object store, a folder of this machine's temporary directory named after it."""
        if not self.remote:
            return self.path
        digest = hashlib.sha256(self.root.encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"fusioncast-scratch-{digest}"

    @property
    def embeddings(self) -> Path:
        """The cache of pretrained text embeddings (``embeddings/`` under :attr:`scratch`)."""
        return self.scratch

    @property
    def checkpoints(self) -> Path:
        """Epoch backups of training runs, one directory per data and settings (for resuming);
        on this machine's disk (:attr:`scratch`) for a workspace on an object store."""
        return self.scratch / "checkpoints"


class _RunParameters(BaseModel):
    """What every flow that reads data and trains on it takes."""

    model_config = ConfigDict(extra="forbid")

    preset: PresetName | None = Field(
        None,
        description=(
            "Named model and training settings to start from (fusioncast.presets); the model "
            "and training fields given here override it."
        ),
    )
    data_path: str = Field("data/demo", description="Parquet file or directory of the input data.")

    _readable = field_validator("data_path")(readable_data_path)
    workspace: Workspace = Field(default_factory=Workspace)
    contract: DataContract = Field(DEMO_CONTRACT, description="Column roles of the input.")
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    validation: ValidationConfig = Field(
        default_factory=ValidationConfig,
        description="Data validation: policy (fail or quarantine) and tolerances.",
    )
    baselines: BaselineConfig = Field(
        default_factory=BaselineConfig,
        description="The statistical peers scored beside the model (statsforecast).",
    )

    @model_validator(mode="before")
    @classmethod
    def _preset_under_given_fields(cls, payload: Any) -> Any:
        return apply_preset(payload) if isinstance(payload, dict) else payload


class RetrainParameters(_RunParameters):
    """Parameters of the ``retrain`` flow."""

    promotion: PromotionConfig = Field(
        default_factory=PromotionConfig,
        description="When the new model replaces the champion (the promotion gate).",
    )
    publish_forecasts: bool = Field(
        True, description="Publish forecasts of the champion after the promotion gate."
    )


class ForecastParameters(BaseModel):
    """Parameters of the ``forecast`` flow."""

    model_config = ConfigDict(extra="forbid")

    data_path: str = Field("data/demo", description="Parquet file or directory of the latest data.")

    _readable = field_validator("data_path")(readable_data_path)
    workspace: Workspace = Field(default_factory=Workspace)
    model_version: str | None = Field(
        None, description="Model version to use; the registry's champion when empty."
    )
    validation: ValidationConfig = Field(
        default_factory=ValidationConfig,
        description="Data validation: policy (fail or quarantine) and tolerances.",
    )
    shards: int = Field(
        1,
        ge=1,
        le=1024,
        description=(
            "Groups of series predicted apart, each on a worker of the task runner (1: in the "
            "run's process); the forecasts are gathered into one file."
        ),
    )
    task_runner: TaskRunnerConfig = Field(
        default_factory=TaskRunnerConfig, description="Where the shards run (shards > 1)."
    )


class BacktestParameters(_RunParameters):
    """Parameters of the ``backtest`` flow (rolling-origin evaluation; nothing is registered)."""

    backtest: BacktestConfig = Field(
        default_factory=BacktestConfig, description="Folds: how many origins, how far apart."
    )
    task_runner: TaskRunnerConfig = Field(
        default_factory=TaskRunnerConfig, description="Where the folds run."
    )


class SelectParameters(_RunParameters):
    """Parameters of the ``select`` flow: which settings to compare over rolling origins before
    the test split. The ``model`` and ``training`` fields given here apply to every candidate,
    over the preset's, as they would in a ``retrain`` with that preset."""

    backtest: BacktestConfig = Field(
        default_factory=BacktestConfig,
        description="Folds: how many origins, how far apart (all before the test split).",
    )
    task_runner: TaskRunnerConfig = Field(
        default_factory=TaskRunnerConfig, description="Where the trials run."
    )
    candidates: tuple[str, ...] = Field(
        CANDIDATES,
        min_length=1,
        description=(
            "Settings to compare, in order (a tie goes to the earlier): preset names, and "
            "'default' for the model and training defaults."
        ),
    )

    @field_validator("preset")
    @classmethod
    def _no_preset(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("select chooses the preset: name the presets to compare in candidates")
        return value

    @field_validator("candidates")
    @classmethod
    def _known_candidates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            try:
                candidate(name)
            except ConfigError as error:
                raise ValueError(str(error)) from None
        return tuple(dict.fromkeys(value))  # each once, in the order given
