"""Training recipes: which one train picks, and how a user's options change its schedule."""

from __future__ import annotations

import pytest

from training.recipes import MACHINE, RECIPES, UNIVERSAL, Recipe, default_recipe, schedule
from training.window_contract import horizon_for


def test_generated_data_trains_the_universal_recipe_and_run_files_alone_the_machine_one() -> None:
    assert default_recipe(generated=True) is UNIVERSAL
    assert default_recipe(generated=False) is MACHINE
    assert set(RECIPES) == {"universal", "machine"}


def test_the_machine_recipe_reads_its_machine_and_nearly_the_whole_window() -> None:
    model, train = MACHINE.model, MACHINE.train
    assert model.identity_buckets > 0
    assert model.component_messages
    assert set(model.temporal_pool) == {"last", "mean", "max", "segments"}
    assert (train.type_dropout, train.level_corruption) == (0.0, 0.0)
    assert train.select_on == "last"
    assert train.min_steps > 0
    assert horizon_for(60, MACHINE.max_horizon) == 2
    assert horizon_for(60, UNIVERSAL.max_horizon) == 10
    assert horizon_for(8, MACHINE.max_horizon) == 1


def test_options_not_given_keep_the_recipe_and_given_ones_replace_it() -> None:
    assert schedule(MACHINE) == MACHINE.train
    assert schedule(MACHINE, learning_rate=None, batch_size=None) == MACHINE.train
    config = schedule(MACHINE, learning_rate=1e-3, batch_size=8, faulty_weight=2.0, seed=5)
    assert (config.learning_rate, config.batch_size, config.seed) == (1e-3, 8, 5)
    assert config.loss.faulty_weight == 2.0
    assert config.loss.weights == MACHINE.train.loss.weights  # the forecast weight stays


@pytest.mark.parametrize("recipe", [MACHINE, UNIVERSAL], ids=lambda r: r.name)
def test_given_epochs_are_exact_and_given_patience_stops_on_the_validation_loss(
    recipe: Recipe,
) -> None:
    assert MACHINE.train.min_steps > 0
    exact = schedule(MACHINE, epochs=7)
    assert (exact.epochs, exact.min_steps) == (7, 0)
    stopping = schedule(MACHINE, patience=3)
    assert (stopping.patience, stopping.select_on) == (3, "selection")
