"""Training-time changes to batches: hidden component types and shifted sensor levels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from training.data.demo import LabelledBatch
from worker.model import FeatureContract
from worker.model.contract import UNKNOWN_COMPONENT_TYPE


def hide_component_types(
    labelled: LabelledBatch, rate: float, rng: np.random.Generator
) -> LabelledBatch:
    """Hide each component's type (the "unknown" bucket) with probability ``rate``, as a
    machine with types the contract does not know would show them."""
    if rate <= 0.0:
        return labelled
    batch = labelled.batch
    hide = torch.from_numpy(rng.random(batch.num_components) < rate)
    bucket = batch.component_bucket.masked_fill(hide, UNKNOWN_COMPONENT_TYPE)
    hidden = replace(batch, component_bucket=bucket, component_type=bucket[batch.node_component])
    return replace(labelled, batch=hidden)


def shift_levels(
    labelled: LabelledBatch, rate: float, contract: FeatureContract, rng: np.random.Generator
) -> LabelledBatch:
    """Shift the observed input steps (not the forecast horizon) of each sensor no fault
    affects, with probability ``rate``, by 0.3-1.5 normal half-widths up or down.

    Trained to forecast the unshifted horizon, the forecaster learns the level a sensor's
    neighbours imply, so its residual grows where a fault moves a sensor away from it.
    """
    if rate <= 0.0:
        return labelled
    batch = labelled.batch
    chosen = rng.random(batch.num_nodes) < rate
    chosen &= ~labelled.sensor_label.numpy()
    if not chosen.any():
        return labelled
    size = rng.uniform(0.3, 1.5, batch.num_nodes) * rng.choice([-1.0, 1.0], batch.num_nodes)
    offset = torch.from_numpy(np.where(chosen, size, 0.0).astype(np.float32))
    split = contract.encoder_steps
    x = batch.x.clone()
    x[:, :split] += offset[:, None] * batch.mask[:, :split]
    return replace(labelled, batch=replace(batch, x=x))
