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
    last step and the mask-weighted mean of the convolution features, with the window's
    summary statistics, are projected to ``out_features``. Rows are independent: the
    encoder runs once per sensor window, never once per time step.

    Args:
        out_features: Width of the returned vector.
        channels: Convolution channels.
        dilations: Dilation of each convolution; the receptive field is
            ``1 + (kernel_size - 1) * sum(dilations)`` steps.
        kernel_size: Convolution width.
    """

    def __init__(
        self,
        out_features: int,
        *,
        channels: int = 16,
        dilations: Sequence[int] = (1, 2, 4, 8),
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        if not dilations:
            raise ValueError("dilations must name at least one convolution")
        self.channels = channels
        self.dilations = tuple(dilations)
        self.kernel_size = kernel_size
        widths = [2, *([channels] * len(self.dilations))]
        self.convs = nn.ModuleList(
            nn.Conv1d(widths[i], channels, kernel_size, dilation=d)
            for i, d in enumerate(self.dilations)
        )
        self.project = nn.Linear(2 * channels + WINDOW_STATISTICS, out_features)

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
        weights = mask / mask.sum(dim=1, keepdim=True).clamp_min(1.0)
        mean = torch.einsum("ncl,nl->nc", h, weights)
        features = torch.cat([h[:, :, -1], mean, window_statistics(x, mask)], dim=1)
        out: Tensor = self.project(features)
        return out

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, dilations={list(self.dilations)}, "
            f"kernel_size={self.kernel_size}, receptive_field={self.receptive_field}"
        )
