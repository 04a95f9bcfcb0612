"""Presets: named model and training settings under the fields a user gives."""

from __future__ import annotations

import json

import pytest

from fusioncast.config import ModelConfig, TrainingConfig
from fusioncast.parameters import BacktestParameters, RetrainParameters
from fusioncast.presets import PRESETS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_preset_sets_its_fields_and_leaves_the_rest_at_their_defaults(name):
    parameters = RetrainParameters.model_validate({"preset": name})
    fields = PRESETS[name]
    for section, config, defaults in (
        ("model", parameters.model, ModelConfig()),
        ("training", parameters.training, TrainingConfig()),
    ):
        for field, value in config.model_dump().items():
            expected = fields[section].get(field, defaults.model_dump()[field])
            assert value == expected, (section, field)


def test_fields_given_explicitly_override_the_preset():
    parameters = BacktestParameters.model_validate(
        {"preset": "short-weekly", "model": {"hidden_units": 48}, "training": {"epochs": 3}}
    )
    assert parameters.model.hidden_units == 48 and parameters.training.epochs == 3
    assert parameters.model.linear_skip == "ridge"  # from the preset
    assert parameters.training.patience == PRESETS["short-weekly"]["training"]["patience"]


def test_the_preset_is_recorded_with_the_parameters():
    """A registered version's manifest keeps the parameters: the preset's name stays visible."""
    dumped = RetrainParameters.model_validate({"preset": "short-monthly"}).model_dump(mode="json")
    assert dumped["preset"] == "short-monthly"
    assert RetrainParameters.model_validate(dumped).model == ModelConfig(
        **PRESETS["short-monthly"]["model"]
    )


def test_an_unknown_preset_is_one_line_naming_the_presets(tmp_path, capfd):
    from fusioncast.flows.cli import main

    params = tmp_path / "params.json"
    params.write_text(json.dumps({"preset": "long-hourly"}))
    assert main(["retrain", "--workdir", str(tmp_path / "out"), "--params", str(params)]) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err
    line = next(line for line in err.splitlines() if line.startswith("fusioncast: "))
    assert "preset" in line and "short-weekly" in line
