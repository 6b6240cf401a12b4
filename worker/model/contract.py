"""FeatureContract: what a model was trained to read, saved with its checkpoint.

Training and the worker build features from one contract, so a checkpoint carries the window
length, the model's sample rate, the vocabularies in their embedding order and the
normalisation statistics it learned. Everything here is plain data: ``to_dict`` and
``from_dict`` round-trip through JSON.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Final

from schemas.vocabulary import CONNECTION_TYPES, SENSOR_KINDS
from service.errors import ConfigurationError

UNKNOWN_COMPONENT_TYPE: Final = 0
"""Bucket reserved for component types the contract does not know."""

FALLBACK_SENSOR_KIND: Final = "other"
"""Sensor kind used for a kind that is newer than the contract's vocabulary."""

QUANTILE_SPAN: Final = 2.0
"""A sensor scaled by its training quantiles spans ``[-QUANTILE_SPAN, QUANTILE_SPAN]`` from
its lowest to its highest training reading."""

SensorQuantiles = tuple[tuple[str, str, tuple[float, ...]], ...]
"""``(machine, sensor id, knots)`` per sensor: readings at evenly spaced probabilities."""


@dataclass(frozen=True, repr=False)
class FeatureContract:
    """How readings and specs become model inputs; one per model version.

    Attributes:
        window_steps: Steps T the model sees, at ``sample_rate_hz``.
        sample_rate_hz: The model's time base; other rates are resampled to it.
        forecast_horizon: Last H steps the forecasting head predicts from the first T - H.
        sensor_kinds: Sensor kind vocabulary in embedding order.
        connection_types: Connection type vocabulary in edge-feature order.
        edge_attributes: Numeric connection attributes used as edge features (missing -> 0,
            signed ``log1p``-scaled); other attributes are ignored.
        component_type_buckets: Buckets that free-form component types hash into (CRC-32);
            bucket 0 is reserved for unknown types.
        known_component_types: Types seen in training; any other type maps to bucket 0.
            ``None`` hashes every type.
        value_clip: Normalised readings are clipped to ``[-value_clip, value_clip]``.
        residual_scale: Per sensor kind (``sensor_kinds`` order), the typical forecast
            residual in healthy operation; the anomaly score is the residual divided by it.
            ``None`` (untrained) means 1.0 for every kind.
        input_quantiles: Per machine and sensor, the training readings at evenly spaced
            probabilities (lowest first, highest last). A sensor listed here is scaled by
            where a reading falls among them (piecewise linear onto ``[-QUANTILE_SPAN,
            QUANTILE_SPAN]``, and beyond both ends at the slope of the whole span), so that
            changes within a crowded band of values stay visible however wide the spread
            between runs; any other sensor by its normal range. ``None``: every sensor by its
            normal range.
    """

    window_steps: int = 60
    sample_rate_hz: float = 1.0
    forecast_horizon: int = 10
    sensor_kinds: tuple[str, ...] = SENSOR_KINDS
    connection_types: tuple[str, ...] = CONNECTION_TYPES
    edge_attributes: tuple[str, ...] = ("length_m", "diameter_mm", "ratio")
    component_type_buckets: int = 128
    known_component_types: tuple[str, ...] | None = None
    value_clip: float = 20.0
    residual_scale: tuple[float, ...] | None = None
    input_quantiles: SensorQuantiles | None = None

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.forecast_horizon < 1:
            problems.append(f"forecast_horizon must be >= 1, got {self.forecast_horizon}")
        if self.window_steps - self.forecast_horizon < 2:
            problems.append(
                f"window_steps ({self.window_steps}) must exceed forecast_horizon "
                f"({self.forecast_horizon}) by at least 2"
            )
        if not (math.isfinite(self.sample_rate_hz) and self.sample_rate_hz > 0):
            problems.append(f"sample_rate_hz must be a positive number, got {self.sample_rate_hz}")
        if self.component_type_buckets < 2:
            problems.append(
                f"component_type_buckets must be >= 2, got {self.component_type_buckets}"
            )
        if not (math.isfinite(self.value_clip) and self.value_clip > 0):
            problems.append(f"value_clip must be a positive number, got {self.value_clip}")
        if FALLBACK_SENSOR_KIND not in self.sensor_kinds:
            problems.append(f"sensor_kinds must contain {FALLBACK_SENSOR_KIND!r}")
        if self.residual_scale is not None:
            if len(self.residual_scale) != len(self.sensor_kinds):
                problems.append(
                    f"residual_scale has {len(self.residual_scale)} entries, "
                    f"expected one per sensor kind ({len(self.sensor_kinds)})"
                )
            if not all(math.isfinite(s) and s > 0 for s in self.residual_scale):
                problems.append("residual_scale entries must be positive numbers")
        problems += _quantile_problems(self.input_quantiles or ())
        if problems:
            raise ConfigurationError("invalid feature contract: " + "; ".join(problems))

    def __repr__(self) -> str:
        trained = "untrained" if self.residual_scale is None else "trained"
        return (
            f"{type(self).__name__}(window_steps={self.window_steps}, "
            f"sample_rate_hz={self.sample_rate_hz:g}, forecast_horizon={self.forecast_horizon}, "
            f"sensor_kinds={len(self.sensor_kinds)}, "
            f"connection_types={len(self.connection_types)}, "
            f"edge_attributes={list(self.edge_attributes)}, "
            f"component_type_buckets={self.component_type_buckets}, "
            f"residual_scale={trained}, "
            f"input_quantiles={len(self.input_quantiles or ())} sensors)"
        )

    @property
    def encoder_steps(self) -> int:
        """Steps T - H the temporal encoder reads."""
        return self.window_steps - self.forecast_horizon

    @property
    def edge_dim(self) -> int:
        """Width of an edge feature vector.

        Layout: connection type one-hot, then ``same component``, ``self loop``, direction
        (+1 along the connection, -1 against it, 0 inside a component), then one slot per
        ``edge_attributes`` name.
        """
        return len(self.connection_types) + 3 + len(self.edge_attributes)

    def kind_index(self, kind: str) -> int:
        """Embedding index of a sensor kind; kinds newer than the contract count as ``other``."""
        try:
            return self.sensor_kinds.index(kind)
        except ValueError:
            return self.sensor_kinds.index(FALLBACK_SENSOR_KIND)

    def component_type_bucket(self, component_type: str) -> int:
        """Stable bucket of a free-form component type (same in every process and run)."""
        if (
            self.known_component_types is not None
            and component_type not in self.known_component_types
        ):
            return UNKNOWN_COMPONENT_TYPE
        digest = zlib.crc32(component_type.encode("utf-8"))
        return 1 + digest % (self.component_type_buckets - 1)

    def residual_scales(self) -> tuple[float, ...]:
        """Residual scale per sensor kind, 1.0 where training has not filled it."""
        if self.residual_scale is None:
            return (1.0,) * len(self.sensor_kinds)
        return self.residual_scale

    def quantiles_of(self, machine: str) -> dict[str, tuple[float, ...]]:
        """Knots of each of ``machine``'s sensors scaled by quantiles (empty: none)."""
        return {
            sensor: knots for name, sensor, knots in self.input_quantiles or () if name == machine
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready form for checkpoints (tuples become lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureContract:
        """Rebuild a contract saved by :meth:`to_dict`.

        Raises:
            ConfigurationError: Unknown keys or invalid values.
        """
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigurationError(f"invalid feature contract: unknown keys {', '.join(unknown)}")
        values: dict[str, Any] = {
            key: tuple(value) if isinstance(value, list) else value for key, value in data.items()
        }
        if values.get("input_quantiles") is not None:
            try:
                values["input_quantiles"] = tuple(
                    (str(machine), str(sensor), tuple(float(k) for k in knots))
                    for machine, sensor, knots in values["input_quantiles"]
                )
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(
                    f"invalid feature contract: input_quantiles: {exc}"
                ) from None
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigurationError(f"invalid feature contract: {exc}") from None


def _quantile_problems(quantiles: SensorQuantiles) -> list[str]:
    problems = []
    for machine, sensor, knots in quantiles:
        if len(knots) < 2 or not all(math.isfinite(k) for k in knots):
            problems.append(f"input_quantiles of {machine}/{sensor}: need 2+ finite knots")
        elif any(b < a for a, b in itertools.pairwise(knots)):
            problems.append(f"input_quantiles of {machine}/{sensor}: knots must not decrease")
    return problems
