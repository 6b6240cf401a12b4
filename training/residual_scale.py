"""Anomaly-score calibration: the typical healthy forecast residual of each sensor kind."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Final

import numpy as np
import torch

from training.data.demo import LabelledWindow, collate_labelled
from worker.model import FeatureContract, UniversalTemporalGNN

_MIN_SCALE: Final = 1e-4


def fit_residual_scale(
    model: UniversalTemporalGNN,
    windows: Sequence[LabelledWindow],
    contract: FeatureContract,
    *,
    batch_size: int = 64,
) -> FeatureContract:
    """Fit each sensor kind's residual scale: the mean forecast RMS residual of sensors of that
    kind in windows where no component has an active fault.

    Kinds never seen healthy get the median of the fitted scales (1.0 if none was fitted).

    Args:
        model: The trained model (any residual scales; they are divided out).
        windows: Labelled windows; only healthy ones are used.
        contract: The contract to copy with the fitted scales.

    Returns:
        ``contract`` with ``residual_scale`` set.
    """
    model.eval()
    kinds = len(contract.sensor_kinds)
    total = np.zeros(kinds)
    count = np.zeros(kinds)
    healthy = [window for window in windows if window.healthy]
    horizon = contract.forecast_horizon
    with torch.inference_mode():
        for start in range(0, len(healthy), batch_size):
            batch = collate_labelled(healthy[start : start + batch_size]).batch
            output = model(batch)
            residual = output.sensor_anomaly * model.residual_scale[batch.sensor_kind]
            observed = batch.mask[:, -horizon:].sum(dim=1) > 0
            kind = batch.sensor_kind[observed].numpy()
            np.add.at(total, kind, residual[observed].double().numpy())
            np.add.at(count, kind, 1.0)
    fitted = count > 0
    scales = np.ones(kinds)
    scales[fitted] = np.maximum(total[fitted] / count[fitted], _MIN_SCALE)
    scales[~fitted] = float(np.median(scales[fitted])) if fitted.any() else 1.0
    return replace(contract, residual_scale=tuple(float(s) for s in scales))
