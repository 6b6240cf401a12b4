"""Short simulated runs, labelled windows and a tiny model configuration for training tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from machines import Run
    from training.data.demo import LabelledWindow
    from worker.model import FeatureContract, ModelConfig


@pytest.fixture(scope="session")
def leak_run() -> Run:
    """One simulated hour of the excavator; its pump starts leaking at 10 min, fails at 40."""
    from machines import generate

    return generate(
        "excavator", duration_s=3600, faults=["pump_internal_leak@10m:linear:1:30m"], seed=3
    )


@pytest.fixture(scope="session")
def contract() -> FeatureContract:
    """The default contract, knowing the excavator's component types."""
    from machines import builtin_spec
    from training.pipeline import contract_for

    return contract_for([builtin_spec("excavator")])


@pytest.fixture(scope="session")
def leak_windows(leak_run: Run, contract: FeatureContract) -> list[LabelledWindow]:
    """The leak run cut every minute."""
    from training.data.demo import label_windows

    return label_windows(leak_run, contract, stride_s=60)


@pytest.fixture(scope="session")
def other_windows(contract: FeatureContract) -> list[LabelledWindow]:
    """Half an hour of another seed with a filter clogging, cut every two minutes."""
    from machines import generate
    from training.data.demo import label_windows

    run = generate(
        "excavator", duration_s=1800, faults=["filter_clogging@5m:exponential:1:20m"], seed=4
    )
    return label_windows(run, contract, stride_s=120)


@pytest.fixture
def tiny_config() -> ModelConfig:
    """A model small enough to train for a few steps in about a second."""
    from worker.model import ModelConfig

    return ModelConfig(
        hidden=16, layers=1, heads=2, dropout=0.0, temporal_channels=8, dilations=(1, 2)
    )
