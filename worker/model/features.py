"""encode_window: the one function that turns a window of readings into model input.

Training and the worker both call it, so what a model learned from is exactly what it is
served. Readings are normalised by each sensor's normal range, resampled to the contract's
time base, aligned on the window's last sample, and masked where missing or non-finite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from schemas.outcomes import DeadLetterReason
from service.errors import InvalidInput
from worker.model.batch import GraphSample
from worker.model.contract import FeatureContract
from worker.model.spec_graph import SpecGraph

Readings = Mapping[str, Sequence[float | None]] | npt.NDArray[np.floating[Any]]
"""A window: ``{sensor_id: [T_in]}`` (a Snapshot's form, ``None`` = missing) or an array
``[T_in, S]`` in spec sensor order (the training form, NaN = missing)."""

_SNAP = 1e-6  # fractional positions this close to a whole step are that step


def encode_window(
    spec_graph: SpecGraph,
    readings: Readings,
    sample_rate_hz: float,
    contract: FeatureContract,
) -> GraphSample:
    """Normalise, resample, align and mask one window of readings.

    Each reading becomes ``(value - centre) / half_width`` of its sensor's normal range, or,
    for a sensor the contract scales by training quantiles, its place among them
    (:attr:`~worker.model.contract.FeatureContract.input_quantiles`); then it is clipped to
    ``contract.value_clip``. A window at another rate is put on the contract's
    time base from its observed samples only. A faster window (``ratio`` input samples per
    model step, ``ratio > 1``) is averaged: each model step is the mean of the observed
    samples in the ``ratio`` samples ending at it (a box-car filter, so that components
    faster than the model's Nyquist rate are attenuated instead of aliased), masked when
    none was observed. A slower window is linearly interpolated (a step is masked when
    neither neighbouring sample was observed). The last model step falls on the last
    sample; a window covering fewer than T model steps is left-padded with mask 0 (and
    ``covered_steps`` says so), a longer one keeps its last T steps.

    Args:
        spec_graph: Static graph of the window's spec, built under ``contract``.
        readings: ``{sensor_id: [T_in]}`` with ``None`` for a missing sample, or a float
            array ``[T_in, S]`` in spec sensor order with NaN for a missing sample. Spec
            sensors absent from a mapping are fully masked.
        sample_rate_hz: Rate of ``readings``.
        contract: Window length and time base of the model.

    Returns:
        The encoded sample with its count of non-finite readings (NaN or infinite in the
        mapping form; infinite in the array form, where NaN means missing) and the sensors
        with no usable reading.

    Raises:
        InvalidInput: A sensor id not in the spec (``unknown_sensor``), series of different
            lengths (``ragged_window``), no series (``empty_readings``), an empty series
            (``window_too_short``), a window without a single finite reading
            (``empty_readings``) or a bad rate (``schema_invalid``).
        ValueError: An array whose shape does not match the spec.

    Shapes:
        readings: ``{sensor_id: [T_in]}`` or ``[T_in, S]``.
        returned x, mask: ``[S, T]`` float32 with T = ``contract.window_steps``.
    """
    if not (np.isfinite(sample_rate_hz) and sample_rate_hz > 0):
        raise InvalidInput(
            f"window.sample_rate_hz: must be a positive number, got {sample_rate_hz}",
            reason=DeadLetterReason.SCHEMA_INVALID.value,
            field="window.sample_rate_hz",
        )
    if isinstance(readings, np.ndarray):
        raw, nonfinite = _from_array(spec_graph, readings)
    else:
        raw, nonfinite = _from_mapping(spec_graph, readings)

    observed = np.isfinite(raw)
    scaled = _scale(spec_graph, np.where(observed, raw, 0.0))
    ratio = sample_rate_hz / contract.sample_rate_hz
    steps, clip = contract.window_steps, contract.value_clip
    if not resampled(sample_rate_hz, contract):
        values, mask = _align(scaled, observed, steps)
        covered = min(scaled.shape[1], steps)
    else:
        position = _positions(scaled.shape[1], steps, ratio)
        covered = int((position >= 0).sum())
        if ratio > 1.0:
            values, mask = _interval_means(np.clip(scaled, -clip, clip), observed, position, ratio)
        else:
            values, mask = _interpolate(scaled, observed, position)

    x = (np.clip(values, -clip, clip) * mask).astype(np.float32)
    seen = mask.any(axis=1)
    if not seen.any():
        raise InvalidInput(
            "window.readings: no finite reading in the window (every value missing, NaN "
            "or infinite)",
            reason=DeadLetterReason.EMPTY_READINGS.value,
            field="window.readings",
        )
    missing = np.flatnonzero(~seen)
    return GraphSample(
        graph=spec_graph,
        x=x,
        mask=mask.astype(np.float32),
        nonfinite_count=nonfinite,
        missing_sensors=tuple(spec_graph.sensor_ids[i] for i in missing),
        covered_steps=covered,
    )


def resampled(sample_rate_hz: float, contract: FeatureContract) -> bool:
    """Whether :func:`encode_window` resamples a window at ``sample_rate_hz`` (a rate
    within one part in a million of the contract's is taken as the contract's)."""
    return abs(sample_rate_hz / contract.sample_rate_hz - 1.0) >= _SNAP


def _scale(graph: SpecGraph, raw: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Readings ``[S, T]`` in model units: by normal range, or by training quantiles where
    the graph has knots (linear beyond the outer knots, at the slope of the whole span)."""
    scaled = (raw - graph.centre[:, None]) / graph.half_width[:, None]
    for node, (knots, landed) in graph.input_knots.items():
        row = raw[node]
        slope = (landed[-1] - landed[0]) / (knots[-1] - knots[0])
        inside = np.interp(row, knots, landed)
        below = landed[0] + (row - knots[0]) * slope
        above = landed[-1] + (row - knots[-1]) * slope
        scaled[node] = np.where(row < knots[0], below, np.where(row > knots[-1], above, inside))
    return scaled


def _from_array(
    graph: SpecGraph, readings: npt.NDArray[np.floating[Any]]
) -> tuple[npt.NDArray[np.float64], int]:
    if readings.ndim != 2 or readings.shape[1] != graph.num_nodes or readings.shape[0] < 1:
        raise ValueError(
            f"readings array must be [T_in >= 1, {graph.num_nodes}] for spec "
            f"{graph.name!r}, got {list(readings.shape)}"
        )
    raw = readings.T.astype(np.float64)
    return raw, int(np.isinf(raw).sum())


def _from_mapping(
    graph: SpecGraph, readings: Mapping[str, Sequence[float | None]]
) -> tuple[npt.NDArray[np.float64], int]:
    if not readings:
        raise InvalidInput(
            "window.readings: a window needs at least one sensor series",
            reason=DeadLetterReason.EMPTY_READINGS.value,
            field="window.readings",
        )
    index = graph.sensor_index
    for sensor_id in readings:
        if sensor_id not in index:
            raise InvalidInput(
                f"window.readings.{sensor_id}: sensor {sensor_id!r} is not in spec {graph.name!r}",
                reason=DeadLetterReason.UNKNOWN_SENSOR.value,
                field=f"window.readings.{sensor_id}",
            )
    series = list(readings.values())
    try:
        # None becomes NaN here, in C; no per-sample Python.
        block = np.array(series, dtype=np.float64)
    except ValueError:
        raise InvalidInput(
            "window.readings: series have different lengths",
            reason=DeadLetterReason.RAGGED_WINDOW.value,
            field="window.readings",
        ) from None
    if block.ndim != 2 or block.shape[1] < 1:
        raise InvalidInput(
            "window.readings: a window needs at least one time step",
            reason=DeadLetterReason.WINDOW_TOO_SHORT.value,
            field="window.readings",
        )
    rows = np.fromiter((index[sid] for sid in readings), dtype=np.int64, count=len(readings))
    raw = np.full((graph.num_nodes, block.shape[1]), np.nan)
    raw[rows] = block
    nones = sum(values.count(None) for values in series if isinstance(values, list | tuple))
    return raw, int((~np.isfinite(block)).sum()) - nones


def _align(
    values: npt.NDArray[np.float64], observed: npt.NDArray[np.bool_], steps: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    available = values.shape[1]
    if available >= steps:
        return values[:, available - steps :], observed[:, available - steps :]
    pad = ((0, 0), (steps - available, 0))
    return np.pad(values, pad), np.pad(observed, pad)


def _positions(available: int, steps: int, ratio: float) -> npt.NDArray[np.float64]:
    """Fractional input position of each model step, the last one on the last sample;
    negative before the window's first sample."""
    position = (available - 1) - (steps - 1 - np.arange(steps, dtype=np.float64)) * ratio
    return _snapped(position)


def _snapped(position: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    whole = np.rint(position)
    return np.where(np.abs(position - whole) < _SNAP, whole, position)


def _interval_means(
    values: npt.NDArray[np.float64],
    observed: npt.NDArray[np.bool_],
    position: npt.NDArray[np.float64],
    ratio: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Mean of the observed samples ``i`` with ``position - ratio < i <= position``, per step.

    ``values`` must be bounded (clipped): sums are taken as differences of cumulative sums.

    Shapes:
        values, observed: ``[S, T_in]``; position: ``[T]``; returned: ``[S, T]`` twice.
    """
    available = values.shape[1]
    zero = np.zeros((values.shape[0], 1))
    total = np.concatenate([zero, np.cumsum(np.where(observed, values, 0.0), axis=1)], axis=1)
    count = np.concatenate([zero, np.cumsum(observed, axis=1, dtype=np.float64)], axis=1)
    # Half-open [start, end) in sample indices; a step before the window gets start = end = 0.
    end = np.clip(np.floor(position).astype(np.int64) + 1, 0, available)
    start = np.clip(np.floor(_snapped(position - ratio)).astype(np.int64) + 1, 0, available)
    seen = count[:, end] - count[:, start]
    mask = seen > 0.5
    summed = total[:, end] - total[:, start]
    return np.where(mask, summed / np.where(mask, seen, 1.0), 0.0), mask


def _interpolate(
    values: npt.NDArray[np.float64],
    observed: npt.NDArray[np.bool_],
    position: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Linear interpolation between the observed neighbours of each step's position.

    Shapes:
        values, observed: ``[S, T_in]``; position: ``[T]``; returned: ``[S, T]`` twice.
    """
    last = values.shape[1] - 1
    inside = position >= 0
    position = np.clip(position, 0, last)
    left = np.floor(position).astype(np.int64)
    right = np.minimum(left + 1, last)
    towards_right = position - left

    weight_left = (1.0 - towards_right) * observed[:, left]
    weight_right = towards_right * observed[:, right]
    total = weight_left + weight_right
    mask = (total > _SNAP) & inside
    blended = weight_left * values[:, left] + weight_right * values[:, right]
    return np.where(mask, blended / np.where(mask, total, 1.0), 0.0), mask
