"""StatisticsEncoder: one vector per sensor from summary statistics of its masked window.

Beside the temporal convolutions, the level, spread, range and roughness of each sensor's
window go through a small MLP of their own, so that a model can separate conditions that
differ in these statistics (what a tree ensemble on per-window statistics reads) without
having to learn them through the convolutions. The statistics are computed inside the model
from the encoded window and its mask: the feature contract and the serving path are the same
with or without this branch.
"""

from __future__ import annotations

from typing import Final

import torch
from torch import Tensor, nn

from worker.model.temporal import window_statistics

SENSOR_STATISTICS: Final = 7
"""Statistics per sensor (see :func:`sensor_statistics`)."""


def sensor_statistics(x: Tensor, mask: Tensor) -> Tensor:
    """Observed fraction, mean, standard deviation, last, min and max of the observed
    values, and the mean absolute difference between consecutive observed steps.

    Differences are taken only between neighbouring steps that were both observed, so a gap
    is not read as a jump. Every statistic of a row with no observation is 0 (the
    difference also for a row without two consecutive observed steps).

    Shapes:
        x, mask: ``[N, L]``; returned: ``[N, SENSOR_STATISTICS]``.
    """
    pairs = mask[:, 1:] * mask[:, :-1]
    jumps = (x[:, 1:] - x[:, :-1]).abs() * pairs
    roughness = jumps.sum(dim=1) / pairs.sum(dim=1).clamp_min(1.0)
    return torch.cat([window_statistics(x, mask), roughness[:, None]], dim=1)


class StatisticsEncoder(nn.Module):
    """Summary statistics of each row's window through a two-layer MLP.

    Readings are normalised by the sensor's normal range (healthy values in about
    ``[-1, 1]``) but clipped only far outside it; every statistic but the observed fraction
    is compressed by ``asinh`` first, which is close to the identity inside the normal range
    and logarithmic far outside it, so that one extreme window does not saturate the MLP.

    Args:
        out_features: Width of the returned vector.
        hidden: Width of the MLP's hidden layer.
    """

    def __init__(self, out_features: int, *, hidden: int | None = None) -> None:
        super().__init__()
        width = hidden or out_features
        self.mlp = nn.Sequential(
            nn.Linear(SENSOR_STATISTICS, width), nn.SiLU(), nn.Linear(width, out_features)
        )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """Encode each row's window statistics.

        Args:
            x: Normalised readings, 0 where masked.
            mask: 1 where observed.

        Returns:
            One vector per row.

        Shapes:
            x, mask: ``[N, L]``; returned: ``[N, out_features]``.
        """
        statistics = sensor_statistics(x, mask)
        features = torch.cat([statistics[:, :1], torch.asinh(statistics[:, 1:])], dim=1)
        out: Tensor = self.mlp(features)
        return out
