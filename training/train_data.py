"""The data of ``gnn-service train``: the model's window, run files and generated runs cut
into windows, the runs too short for one, and the validation split.

Run files validate on whole held-out runs (:func:`training.validation_split.split_runs`);
generated data validates on runs of another seed. What was decided is returned as plain-words
notes for the command to print, and as a JSON-ready description for the checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from machines import Run, builtin_spec
from schemas import SystemSpec
from training.data.runs import (
    RunWindows,
    ShortRun,
    cut_runs,
    duration_s,
    flatten,
    gaps_note,
    recipe_runs,
    run_names,
    too_short_message,
)
from training.errors import TrainingDataError
from training.pipeline import DataPlan, contract_for
from training.validation_split import ValidationSplit, split_runs
from training.window_contract import DEFAULT_HORIZON, WindowChoice, choose_window
from worker.model import FeatureContract, SpecGraphCache
from worker.model.contract import SensorQuantiles


@dataclass(frozen=True)
class DataRequest:
    """What ``train`` was asked to train on.

    Attributes:
        systems: Built-in machines to generate runs of.
        hours: Generated hours per machine (validation: a third of it, seed + 1).
        seed: Seed of generation and of the validation runs' choice.
        files: Run files, each read as ``(path, run)``.
        window_steps: ``--window-steps`` (None: from the data).
        rate_hz: ``--rate`` (None: from the data).
        stride_steps: Model steps between window starts (None: one window length for run
            files, :attr:`DataPlan.stride_s` worth for generated runs).
        val_runs: Run files to hold out (None: ``val_fraction`` of them).
        val_fraction: Share of run files to hold out (None: the default).
        max_horizon: Most forecast steps of the window (the training recipe's).
        input_scaling: ``range`` (each sensor by its normal range) or ``quantiles`` (each
            sensor of a run file by the training runs' quantiles,
            :func:`input_quantiles`; generated data keeps ``range``). The recipe's.
    """

    systems: tuple[str, ...] = ()
    hours: float = 48.0
    seed: int = 0
    files: tuple[tuple[Path, Run], ...] = ()
    window_steps: int | None = None
    rate_hz: float | None = None
    stride_steps: int | None = None
    val_runs: int | None = None
    val_fraction: float | None = None
    max_horizon: int = DEFAULT_HORIZON
    input_scaling: str = "range"


@dataclass(frozen=True, eq=False)
class TrainingData:
    """Windows to train and validate on, under the model's contract.

    Attributes:
        contract: The model's contract (window, rate, vocabularies).
        specs: Machines trained on.
        window: The window and why.
        train, val: Runs trained and validated on.
        short: Run files too short for one window.
        split: How run files were split (None for generated data only).
        notes: What was decided, one line each, for people.
        description: JSON-ready description for the checkpoint.
    """

    contract: FeatureContract
    specs: tuple[SystemSpec, ...]
    window: WindowChoice
    train: tuple[RunWindows, ...]
    val: tuple[RunWindows, ...]
    short: tuple[ShortRun, ...]
    split: ValidationSplit | None
    notes: tuple[str, ...]
    description: dict[str, Any]

    @property
    def train_windows(self) -> int:
        """Training windows in all."""
        return sum(len(run.windows) for run in self.train)


def prepare(request: DataRequest) -> TrainingData:
    """Choose the window, cut every run, set runs aside for validation.

    Raises:
        WindowOptionError: A bad ``--window-steps`` or ``--rate``.
        SplitError: The run files cannot be split as asked.
        TrainingDataError: No window is left, or no training or validation window.
    """
    names = run_names([path for path, _ in request.files])
    named = [(name, run) for name, (_, run) in zip(names, request.files, strict=True)]
    specs = _specs(request.systems, [run for _, run in request.files])
    window = choose_window(
        named,
        specs,
        window_steps=request.window_steps,
        rate_hz=request.rate_hz,
        max_horizon=request.max_horizon,
    )
    contract = contract_for(specs, **window.overrides())
    notes = [window.describe(), *window.reasons]
    cache = SpecGraphCache(contract)
    train: list[RunWindows] = []
    val: list[RunWindows] = []
    description: dict[str, Any] = {"window": window.overrides()}
    short: list[ShortRun] = []
    split = None
    if request.systems:
        plan = _plan(request, contract)
        notes.append(
            f"generated data: {request.hours:g} h per machine of seed {request.seed}, validated "
            f"on {plan.val_hours:g} h of seed {plan.val_seed} (other runs); stride "
            f"{plan.stride_s * contract.sample_rate_hz:g} steps"
        )
        for side, into in (("train", train), ("val", val)):
            recipes = plan.demo(request.systems, side).recipes()
            into.extend(recipe_runs(recipes, contract, stride_s=plan.stride_s, cache=cache))
        description["demo"] = plan.demo(request.systems, "train").describe()
    if request.files:
        stride = request.stride_steps or contract.window_steps
        kept, short = cut_runs(
            named,
            contract,
            stride_s=stride / contract.sample_rate_hz,
            cache=cache,
            paths=[path for path, _ in request.files],
        )
        notes.append(f"run files: {len(kept)} of {len(named)} give windows (stride {stride} steps)")
        notes += [f"  {item.describe()}" for item in short]
        gaps = gaps_note(kept)
        notes += [f"  {gaps}"] if gaps else []
        if not kept:
            raise TrainingDataError(too_short_message(short, contract))
        split = split_runs(
            kept, seed=request.seed, val_runs=request.val_runs, val_fraction=request.val_fraction
        )
        if request.input_scaling == "quantiles" and not request.systems:
            # Scaled by the training runs only: cut again under the fitted contract, and split
            # again (the same runs: the split depends on names, conditions and the seed).
            contract = replace(
                contract, input_quantiles=input_quantiles(split.train, request.files)
            )
            cache = SpecGraphCache(contract)
            by_name = dict(named)
            recut, _ = cut_runs(
                [(run.name, by_name[run.name]) for run in kept],
                contract,
                stride_s=stride / contract.sample_rate_hz,
                cache=cache,
                paths=[run.path for run in kept],
            )
            split = split_runs(
                recut,
                seed=request.seed,
                val_runs=request.val_runs,
                val_fraction=request.val_fraction,
            )
            notes.append(
                f"inputs: {len(contract.input_quantiles or ())} sensor(s) scaled by the "
                f"training runs' quantiles ({QUANTILE_KNOTS} knots)"
            )
        notes.append(split.note)
        train += split.train
        val += split.val
        description["files"] = _describe_files(request.files, split, short, stride)
    if not flatten(train) or not flatten(val):
        raise TrainingDataError("the data is too short for a training and a validation window")
    return TrainingData(
        contract=contract,
        specs=tuple(specs),
        window=window,
        train=tuple(train),
        val=tuple(val),
        short=tuple(short),
        split=split,
        notes=tuple(notes),
        description=description,
    )


def _specs(systems: Sequence[str], runs: Sequence[Run]) -> list[SystemSpec]:
    every = [*(builtin_spec(name) for name in systems), *(run.spec for run in runs)]
    return list({spec.name: spec for spec in every}.values())


def _plan(request: DataRequest, contract: FeatureContract) -> DataPlan:
    plan = replace(DataPlan(), hours=request.hours, val_hours=request.hours / 3, seed=request.seed)
    plan = replace(plan, val_seed=request.seed + 1)
    if request.stride_steps is not None:
        plan = replace(plan, stride_s=request.stride_steps / contract.sample_rate_hz)
    return plan


def _describe_files(
    files: Sequence[tuple[Path, Run]],
    split: ValidationSplit,
    short: Sequence[ShortRun],
    stride_steps: int,
) -> dict[str, Any]:
    """Each run file with its role: ``train``, ``validation``, ``split in time`` (with the
    end of its last training window) or ``too short``."""
    train = {run.path: run for run in split.train}
    val = {run.path: run for run in split.val}
    too_short = {item.name for item in short}
    rows = []
    names = run_names([path for path, _ in files])
    for name, (path, run) in zip(names, files, strict=True):
        row: dict[str, Any] = {
            "file": path.name,
            "path": str(path.resolve()),
            "system": run.system,
            "hours": duration_s(run) / 3600.0,
            "faults": [str(fault) for fault in run.faults],
        }
        if path in train and path in val:
            row["role"] = "split in time"
            row["train_until_s"] = float(train[path].ends_s[-1])
        elif path in train:
            row["role"] = "train"
        elif path in val:
            row["role"] = "validation"
        else:
            row["role"] = "too short" if name in too_short else "unused"
        rows.append(row)
    return {
        "source": "files",
        "stride_steps": stride_steps,
        "split": split.describe(),
        "runs": rows,
    }


def recorded_training_files(training: dict[str, Any]) -> list[tuple[Path, float | None]]:
    """The run files a checkpoint's model was trained on (from its training record), with
    the end of the last training window for a file split in time (None: all of it)."""
    runs = training.get("data", {}).get("files", {}).get("runs", [])
    out: list[tuple[Path, float | None]] = []
    for row in runs:
        if row.get("role") in ("train", "split in time") and "path" in row:
            out.append((Path(row["path"]), row.get("train_until_s")))
    return out


QUANTILE_KNOTS: Final = 65
"""Knots per sensor of quantile input scaling (every 1/64 of the training readings)."""


def input_quantiles(
    train: Sequence[RunWindows], files: Sequence[tuple[Path, Run]]
) -> SensorQuantiles:
    """Each sensor's readings at :data:`QUANTILE_KNOTS` evenly spaced probabilities, over the
    training runs' steps up to their last training window (a run split in time gives only
    its training part); sensors never observed are left out.
    """
    runs = dict(files)
    pooled: dict[tuple[str, str], list[npt.NDArray[np.float64]]] = {}
    for windows in train:
        if windows.path is None:
            continue
        run = runs[windows.path]
        until = float(windows.ends_s.max()) if len(windows.ends_s) else -1.0
        rows = run.readings[run.t_s <= until + 1e-9].astype(np.float64)
        for column, sensor in enumerate(run.spec.sensor_ids):
            pooled.setdefault((run.spec.name, sensor), []).append(rows[:, column])
    probabilities = np.linspace(0.0, 1.0, QUANTILE_KNOTS)
    out = []
    for (machine, sensor), parts in pooled.items():
        values = np.concatenate(parts)
        values = values[np.isfinite(values)]
        if values.size:
            knots = np.quantile(values, probabilities)
            out.append((machine, sensor, tuple(float(k) for k in knots)))
    return tuple(out)
