"""Cut a run into snapshot windows, the payloads the producer publishes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from machines.catalog import is_builtin
from machines.run import Run
from schemas import MIN_WINDOW_STEPS, Snapshot, SystemSpec, Window


def snapshot_id(run: Run, start_index: int) -> str:
    """Deterministic snapshot id of the window starting at ``start_index``:
    ``<system>-s<seed>-<start_index>`` (``excavator-s7-000360``)."""
    return f"{run.system}-s{run.seed}-{start_index:06d}"


def demo_system_id(run: Run) -> str:
    """The machine-instance id a run's snapshots carry: ``demo-<system>-s<seed>``."""
    return f"demo-{run.system}-s{run.seed}"


def windows(
    run: Run,
    length: int,
    stride: int | None = None,
    *,
    system_id: str | None = None,
    inline_spec: bool = False,
) -> Iterator[tuple[int, Snapshot]]:
    """Slide a window over a run and yield one validated snapshot per position.

    Readings keep the float32 values' shortest decimal form (``12.3``, not
    ``12.300000190734863``), and missing samples (NaN) become ``None``.

    Args:
        run: The run.
        length: Steps per window (at least 2).
        stride: Steps between window starts; ``length`` (no overlap) when ``None``.
        system_id: Machine-instance id; :func:`demo_system_id` when ``None``.
        inline_spec: Put the full spec in each snapshot instead of the built-in name; forced
            for a machine that is not built in.

    Yields:
        ``(start_index, snapshot)`` for every window that fits entirely in the run.

    Raises:
        ValueError: ``length`` or ``stride`` is out of range.
    """
    step = length if stride is None else stride
    if length < MIN_WINDOW_STEPS:
        raise ValueError(f"window length must be >= {MIN_WINDOW_STEPS}, got {length}")
    if step < 1:
        raise ValueError(f"stride must be >= 1, got {step}")
    spec: str | SystemSpec = run.spec if inline_spec or not is_builtin(run.spec) else run.system
    machine = system_id or demo_system_id(run)
    for start in range(0, run.steps - length + 1, step):
        block = run.readings[start : start + length]
        # float32 -> shortest decimal string -> float64 keeps payloads short and exact.
        decimal = block.astype(str).astype(np.float64)
        readings = {
            sensor_id: [None if np.isnan(v) else v for v in decimal[:, index].tolist()]
            for index, sensor_id in enumerate(run.sensor_ids)
        }
        window = Window(
            start=run.timestamp(start), sample_rate_hz=run.sample_rate_hz, readings=readings
        )
        yield (
            start,
            Snapshot(
                snapshot_id=snapshot_id(run, start),
                system_id=machine,
                spec=spec,
                window=window,
            ),
        )
