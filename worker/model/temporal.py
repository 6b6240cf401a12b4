"""TemporalEncoder: one vector per sensor from its masked window, by dilated causal convolutions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias
from torch import Tensor, nn

WINDOW_STATISTICS: Final = 6
"""Summary statistics appended to the convolution features (see :func:`window_statistics`)."""

_FAR: Final = 1e4  # beyond any clipped normalised reading

TEMPORAL_POOLS: Final = ("last", "mean", "max", "segments")
"""Poolings of the convolution features over time that :class:`TemporalEncoder` knows."""


def last_observed(x: Tensor, mask: Tensor) -> Tensor:
    """Each row's last observed value, 0 for a row with none.

    Shapes:
        x, mask: ``[N, L]``; returned: ``[N]``.
    """
    steps = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype)
    index = (mask * steps).argmax(dim=1, keepdim=True)
    return (x * mask).gather(1, index).squeeze(1)


def window_statistics(x: Tensor, mask: Tensor) -> Tensor:
    """Observed fraction, mean, standard deviation, last, min and max of observed values.

    Every statistic of a row with no observation is 0.

    Shapes:
        x, mask: ``[N, L]``; returned: ``[N, WINDOW_STATISTICS]``.
    """
    count = mask.sum(dim=1)
    seen = count > 0
    denominator = count.clamp_min(1.0)
    mean = (x * mask).sum(dim=1) / denominator
    variance = (((x - mean[:, None]) * mask) ** 2).sum(dim=1) / denominator
    std = torch.sqrt(variance + 1e-6) - 1e-3
    low = torch.where(mask > 0, x, torch.full_like(x, _FAR)).amin(dim=1)
    high = torch.where(mask > 0, x, torch.full_like(x, -_FAR)).amax(dim=1)
    zero = torch.zeros_like(mean)
    return torch.stack(
        [
            count / x.shape[1],
            mean,
            torch.where(seen, std, zero),
            last_observed(x, mask),
            torch.where(seen, low, zero),
            torch.where(seen, high, zero),
        ],
        dim=1,
    )


class TemporalEncoder(nn.Module):
    """Dilated causal 1-D convolutions over a window and its mask, pooled to one vector.

    The mask is an input channel, so a gap is seen as a gap, not as a reading of 0. The
    convolution features are pooled over time (by default their last step and their
    mask-weighted mean; optionally also their maximum over observed steps, which keeps a
    short transient anywhere in the window) and, with the window's summary statistics,
    projected to ``out_features``. Rows are independent: the encoder runs once per sensor
    window, never once per time step.

    Args:
        out_features: Width of the returned vector.
        channels: Convolution channels.
        dilations: Dilation of each convolution; the receptive field is
            ``1 + (kernel_size - 1) * sum(dilations)`` steps.
        kernel_size: Convolution width.
        pools: Poolings over time, in order, each one of :data:`TEMPORAL_POOLS`: ``last``
            (the last step), ``mean`` (mask-weighted mean) and ``max`` (maximum over
            observed steps, 0 for a row with none) and ``segments`` (mask-weighted mean
            over each of ``segments`` consecutive, about equal parts of the window, which
            keeps where in the window a feature occurs).
        segments: Parts of the window of the ``segments`` pooling.
    """

    def __init__(
        self,
        out_features: int,
        *,
        channels: int = 16,
        dilations: Sequence[int] = (1, 2, 4, 8),
        kernel_size: int = 3,
        pools: Sequence[str] = ("last", "mean"),
        segments: int = 4,
    ) -> None:
        super().__init__()
        if not dilations:
            raise ValueError("dilations must name at least one convolution")
        unknown = [pool for pool in pools if pool not in TEMPORAL_POOLS]
        if not pools or unknown or len(set(pools)) != len(pools):
            raise ValueError(
                f"pools must be distinct names among {list(TEMPORAL_POOLS)}, got {list(pools)}"
            )
        if segments < 1:
            raise ValueError(f"segments must be >= 1, got {segments}")
        self.pools = tuple(pools)
        self.segments = segments
        self.channels = channels
        self.dilations = tuple(dilations)
        self.kernel_size = kernel_size
        widths = [2, *([channels] * len(self.dilations))]
        self.convs = nn.ModuleList(
            nn.Conv1d(widths[i], channels, kernel_size, dilation=d)
            for i, d in enumerate(self.dilations)
        )
        widths_pooled = sum(segments if pool == "segments" else 1 for pool in self.pools)
        self.project = nn.Linear(widths_pooled * channels + WINDOW_STATISTICS, out_features)

    @property
    def receptive_field(self) -> int:
        """Steps that influence the last output step."""
        return 1 + (self.kernel_size - 1) * sum(self.dilations)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """Encode each row's window.

        Args:
            x: Normalised readings, 0 where masked.
            mask: 1 where observed.

        Returns:
            One vector per row.

        Shapes:
            x, mask: ``[N, L]``; returned: ``[N, out_features]``.
        """
        h = torch.stack([x * mask, mask], dim=1)
        for index, (conv, dilation) in enumerate(zip(self.convs, self.dilations, strict=True)):
            causal = F.pad(h, ((self.kernel_size - 1) * dilation, 0))
            update = F.silu(conv(causal))
            h = update if index == 0 else h + update
        pooled = [self._pool(name, h, mask) for name in self.pools]
        features = torch.cat([*pooled, window_statistics(x, mask)], dim=1)
        out: Tensor = self.project(features)
        return out

    def _pool(self, name: str, h: Tensor, mask: Tensor) -> Tensor:
        """One pooling of the features ``h`` (``[N, C, L]``) over time: ``[N, C]``
        (``[N, C * segments]`` for ``segments``)."""
        if name == "last":
            return h[:, :, -1]
        if name == "mean":
            weights = mask / mask.sum(dim=1, keepdim=True).clamp_min(1.0)
            return torch.einsum("ncl,nl->nc", h, weights)
        if name == "segments":
            total = F.adaptive_avg_pool1d(h * mask[:, None, :], self.segments)
            seen = F.adaptive_avg_pool1d(mask[:, None, :], self.segments)
            return (total / seen.clamp_min(1e-6)).flatten(1)
        seen = (mask > 0)[:, None, :]
        high = torch.where(seen, h, torch.full_like(h, -_FAR)).amax(dim=2)
        return torch.where(seen.any(dim=2), high, torch.zeros_like(high))

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, dilations={list(self.dilations)}, "
            f"kernel_size={self.kernel_size}, pools={list(self.pools)}, segments={self.segments}, "
            f"receptive_field={self.receptive_field}"
        )
