from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from schemas.vocabulary import SENSOR_KINDS
from service.errors import ConfigurationError
from worker.model.contract import UNKNOWN_COMPONENT_TYPE, FeatureContract


def test_contract_survives_a_json_round_trip() -> None:
    contract = FeatureContract(
        window_steps=30,
        forecast_horizon=5,
        known_component_types=("hydraulic_pump",),
        residual_scale=tuple(float(i + 1) for i in range(len(SENSOR_KINDS))),
    )
    assert FeatureContract.from_dict(json.loads(json.dumps(contract.to_dict()))) == contract


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"window_step": 60}, "unknown keys window_step"),
        ({"window_steps": 10, "forecast_horizon": 9}, "must exceed forecast_horizon"),
        ({"sample_rate_hz": 0.0}, "sample_rate_hz must be a positive number"),
        ({"residual_scale": [1.0, 2.0]}, "residual_scale has 2 entries"),
        ({"sensor_kinds": ["pressure"]}, "sensor_kinds must contain 'other'"),
        ({"window_steps": "60"}, "invalid feature contract"),
    ],
)  # fmt: skip
def test_invalid_contract_is_rejected_with_the_field_named(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        FeatureContract.from_dict(data)


def test_component_type_buckets_are_the_same_in_every_process() -> None:
    script = (
        "from worker.model.contract import FeatureContract as C;"
        "print([C().component_type_bucket(t) for t in ('hydraulic_pump', 'valve_block', 'fan')])"
    )
    seen = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        seen.add(result.stdout.strip())
    contract = FeatureContract()
    here = str(
        [contract.component_type_bucket(t) for t in ("hydraulic_pump", "valve_block", "fan")]
    )
    assert seen == {here}


def test_component_types_hash_into_buckets_above_the_reserved_one() -> None:
    contract = FeatureContract(component_type_buckets=4)
    buckets = {contract.component_type_bucket(f"type_{i}") for i in range(200)}
    assert buckets == {1, 2, 3}


def test_types_unknown_to_a_trained_contract_share_the_unknown_bucket() -> None:
    contract = FeatureContract(known_component_types=("hydraulic_pump",))
    assert contract.component_type_bucket("hydraulic_pump") != UNKNOWN_COMPONENT_TYPE
    assert contract.component_type_bucket("never_seen_type") == UNKNOWN_COMPONENT_TYPE


def test_sensor_kind_newer_than_the_contract_counts_as_other() -> None:
    contract = FeatureContract(sensor_kinds=("pressure", "other"))
    assert contract.kind_index("pressure") == 0
    assert contract.kind_index("temperature") == 1


def test_untrained_contract_scales_residuals_by_one() -> None:
    contract = FeatureContract()
    assert contract.residual_scales() == (1.0,) * len(contract.sensor_kinds)


def test_repr_shows_the_window_and_training_state() -> None:
    text = repr(FeatureContract())
    assert "window_steps=60" in text
    assert "forecast_horizon=10" in text
    assert "residual_scale=untrained" in text
