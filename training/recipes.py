"""Training recipes: the architecture and schedule ``gnn-service train`` starts from.

Two kinds of model are trained, and they want different things:

- ``universal``: one model for every demo machine and for machines it never saw (the
  bundled model). It hides component types now and then (type dropout) and trains its
  forecaster on shifted levels, so that it does not lean on any one machine's names and its
  forecast residual works as an anomaly score anywhere. The forecaster predicts a sixth of
  the window (up to 10 steps), which the classifier does not read.
- ``machine``: a model of the user's own machine, trained on its recorded runs. It leans on
  everything that machine has: which sensor is which (identity embeddings), the shape of
  each window over time (last, mean, max and segment poolings, dilations up to 16 steps),
  and nearly the whole window for the classifier (a forecast horizon of at most 2 steps,
  weighted 0.1). No type dropout and no level shifts. A higher learning rate and weight
  decay with batches of 64 for 120 epochs (more when that is fewer than 2,400 optimiser
  steps), keeping the last epoch: validation is reported, not used to stop. On runs of
  conditions training never saw, the validation loss (and even the share of components
  labelled right) is lowest after a few epochs and the model kept there is much worse on
  new runs than the one at the end of the cosine schedule.

The ``machine`` recipe was chosen on whole runs held out of training data (validation, not
test rows), on the UCI hydraulic rig. With one cycle per run (1,750 trained, 350 validated),
validation fault macro-F1 went from 0.63 (universal recipe) to 0.81 without type dropout and
level shifts, and to 0.93 with the poolings, the short forecast, the schedule and the
identities (forest: 0.94). With one run per stretch of one condition (130 runs trained, 33
validated: conditions validation never trained on), 60 epochs gave 0.65 and 120 epochs 0.74
(forest: 0.53). ``train`` uses ``machine`` when it is given run files only and ``universal``
when it generates demo data; ``--recipe`` chooses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

from training.fit import TrainConfig
from training.objective import LossConfig
from worker.model import LossWeights, ModelConfig


@dataclass(frozen=True)
class Recipe:
    """A model architecture and the schedule that trains it.

    Attributes:
        name: ``universal`` or ``machine``.
        model: The architecture.
        train: The schedule (epochs, batch, learning rate, augmentation, loss weights).
        max_horizon: Most forecast steps (a sixth of the window when that is fewer).
        input_scaling: ``range`` (each sensor by its spec's normal range), ``quantiles``
            (by the training runs' quantiles; :class:`training.train_data.DataRequest`) or
            ``auto`` (both trained, the one better on the validation runs kept).
    """

    name: str
    model: ModelConfig
    train: TrainConfig
    max_horizon: int
    input_scaling: str = "range"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready description for the checkpoint's training record."""
        return {
            "name": self.name,
            "max_forecast_horizon": self.max_horizon,
            "input_scaling": self.input_scaling,
        }


UNIVERSAL: Final = Recipe("universal", ModelConfig(), TrainConfig(epochs=20), max_horizon=10)

MACHINE: Final = Recipe(
    "machine",
    ModelConfig(
        dilations=(1, 2, 4, 8, 16),
        temporal_pool=("last", "mean", "max", "segments"),
        temporal_segments=6,
    ),
    TrainConfig(
        epochs=120,
        batch_size=64,
        learning_rate=1e-2,
        weight_decay=1e-2,
        patience=15,
        type_dropout=0.0,
        level_corruption=0.0,
        loss=LossConfig(weights=LossWeights(forecast=0.1)),
        select_on="last",
        min_steps=2400,
    ),
    max_horizon=2,
    input_scaling="auto",
)

RECIPES: Final = {recipe.name: recipe for recipe in (UNIVERSAL, MACHINE)}

INPUT_SCALINGS: Final = ("auto", "quantiles", "range")
"""Values of ``--input-scaling``."""


def scalings_to_try(chosen: str, *, generated: bool) -> tuple[str, ...]:
    """The input scalings to train: both for ``auto`` on run files only (range first, so
    that it wins a tie), else the one asked for (``range`` for generated data)."""
    if generated:
        return ("range",)
    return ("range", "quantiles") if chosen == "auto" else (chosen,)


"""Every recipe by name."""


def default_recipe(*, generated: bool) -> Recipe:
    """``universal`` when demo data is generated (alone or beside run files), else
    ``machine``."""
    return UNIVERSAL if generated else MACHINE


def schedule(recipe: Recipe, **overrides: object) -> TrainConfig:
    """The recipe's schedule with the options a user gave (``None`` keeps the recipe's).

    ``faulty_weight`` sets the loss's; every other key is a :class:`TrainConfig` field. A
    given ``epochs`` is the count trained (no ``min_steps``); a given ``patience`` stops
    early on the validation loss and keeps its best epoch.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    if "epochs" in given:
        given["min_steps"] = 0
    if "patience" in given:
        given["select_on"] = "selection"
    loss = recipe.train.loss
    if "faulty_weight" in given:
        loss = replace(loss, faulty_weight=float(given.pop("faulty_weight")))  # type: ignore[arg-type]
    return replace(recipe.train, loss=loss, **given)  # type: ignore[arg-type]
