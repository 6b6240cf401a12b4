from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias

from service.errors import ConfigurationError
from worker.model import FeatureContract, ModelConfig, UniversalTemporalGNN
from worker.model.temporal import WINDOW_STATISTICS, TemporalEncoder, window_statistics


def _window(rows: int = 6, steps: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    mask = (torch.rand(rows, steps, generator=generator) > 0.25).float()
    mask[-1] = 0.0  # a row with nothing observed
    x = torch.randn(rows, steps, generator=generator) * mask
    return x, mask


def _features(encoder: TemporalEncoder, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    h = torch.stack([x * mask, mask], dim=1)
    for index, (conv, dilation) in enumerate(zip(encoder.convs, encoder.dilations, strict=True)):
        update = F.silu(conv(F.pad(h, ((encoder.kernel_size - 1) * dilation, 0))))
        h = update if index == 0 else h + update
    return h


def test_the_default_pooling_is_last_step_and_mean_as_before() -> None:
    torch.manual_seed(0)
    encoder = TemporalEncoder(8, channels=4, dilations=(1, 2))
    x, mask = _window()
    h = _features(encoder, x, mask)
    weights = mask / mask.sum(dim=1, keepdim=True).clamp_min(1.0)
    mean = torch.einsum("ncl,nl->nc", h, weights)
    expected = encoder.project(torch.cat([h[:, :, -1], mean, window_statistics(x, mask)], dim=1))
    assert encoder.pools == ("last", "mean")
    assert encoder.project.in_features == 2 * 4 + WINDOW_STATISTICS
    assert torch.equal(encoder(x, mask), expected)


def test_max_pooling_keeps_a_short_transient_anywhere_in_the_window() -> None:
    torch.manual_seed(0)
    encoder = TemporalEncoder(8, channels=4, dilations=(1, 2), pools=("last", "mean", "max"))
    x, mask = _window()
    h = _features(encoder, x, mask)
    pooled = encoder._pool("max", h, mask)
    seen = mask > 0
    for row in range(x.shape[0] - 1):
        assert torch.equal(pooled[row], h[row][:, seen[row]].amax(dim=1))
    assert torch.equal(pooled[-1], torch.zeros(4))  # nothing observed
    assert encoder.project.in_features == 3 * 4 + WINDOW_STATISTICS
    assert encoder(x, mask).shape == (x.shape[0], 8)


def test_segment_pooling_averages_observed_steps_per_part_of_the_window() -> None:
    torch.manual_seed(0)
    encoder = TemporalEncoder(8, channels=4, dilations=(1,), pools=("segments",), segments=4)
    x, mask = _window(steps=40)
    h = _features(encoder, x, mask)
    pooled = encoder._pool("segments", h, mask).reshape(x.shape[0], 4, 4)
    for row in range(x.shape[0] - 1):
        for part in range(4):
            steps = slice(10 * part, 10 * part + 10)
            weights = mask[row, steps]
            if weights.sum() > 0:
                expected = (h[row, :, steps] * weights).sum(dim=1) / weights.sum()
                assert torch.allclose(pooled[row, :, part], expected, atol=1e-6)
    assert encoder.project.in_features == 4 * 4 + WINDOW_STATISTICS
    assert torch.isfinite(encoder(x, mask)).all()


@pytest.mark.parametrize(
    ("pools", "segments"), [((), 4), (("last", "median"), 4), (("max", "max"), 4), (("max",), 0)]
)
def test_invalid_pooling_is_refused(pools: tuple[str, ...], segments: int) -> None:
    with pytest.raises(ValueError, match=r"pools must be|segments must be"):
        TemporalEncoder(8, pools=pools, segments=segments)


def test_a_config_saved_before_the_pooling_option_builds_the_same_model() -> None:
    saved = ModelConfig(hidden=16, heads=2).to_dict()
    del saved["temporal_pool"], saved["temporal_segments"]
    config = ModelConfig.from_dict(saved)
    assert config == ModelConfig(hidden=16, heads=2)
    assert UniversalTemporalGNN(config, FeatureContract()).temporal.pools == ("last", "mean")


def test_the_pooling_option_reaches_the_encoder_and_survives_a_round_trip() -> None:
    config = ModelConfig(
        hidden=16, heads=2, temporal_pool=("last", "mean", "max", "segments"), temporal_segments=6
    )
    assert ModelConfig.from_dict(config.to_dict()) == config
    encoder = UniversalTemporalGNN(config, FeatureContract()).temporal
    assert (encoder.pools, encoder.segments) == (("last", "mean", "max", "segments"), 6)
    assert encoder.project.in_features == 9 * 16 + WINDOW_STATISTICS


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"temporal_pool": ["last", "median"]}, "temporal_pool must be"),
        ({"temporal_pool": []}, "temporal_pool must be"),
        ({"temporal_pool": ["max", "max"]}, "temporal_pool must be"),
        ({"temporal_segments": 0}, "temporal_segments must be"),
    ],
)
def test_invalid_pooling_config_is_rejected(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ModelConfig.from_dict(data)
