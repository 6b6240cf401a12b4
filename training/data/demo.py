"""Labelled training windows: from demo machines with injected faults, or from run files.

A :class:`DemoPlan` says which machines, how many hours each and which seed; it expands into
:class:`RunRecipe`s, each one simulated run with at most one fault of random onset,
progression, severity and time to failure, all drawn deterministically from the seed. Every
fault mode of a machine gets a run, and one run per cycle stays healthy.

A run is cut into windows of ``contract.window_steps`` model steps; each window is labelled
at its last step, the moment a snapshot of it would be diagnosed: component health, the
component's fault as an index into its own candidates (0 = normal, k = its k-th fault mode
in spec order, as :attr:`worker.model.GraphBatch.fault_rank`), remaining useful life, and
per sensor whether an active fault affects it (the anomaly label).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from machines import FAILURE_HEALTH, FaultSpec, Run, builtin_spec, generate, read_run
from machines.faults import PROGRESSIONS
from schemas.outcomes import DeadLetterReason
from service.errors import InvalidInput
from worker.model import (
    FeatureContract,
    GraphBatch,
    GraphSample,
    SpecGraphCache,
    Targets,
    collate,
    encode_window,
)

DEFAULT_STRIDE_S: Final = 120.0
"""Seconds between the starts of consecutive training windows."""

MAX_RUN_HOURS: Final = 12.0
"""Longest simulated run of a plan; more hours per machine mean more runs."""

_PROGRESSION_WEIGHTS: Final = {"step": 0.2, "linear": 0.4, "exponential": 0.4}


@dataclass(frozen=True)
class RunRecipe:
    """One run to simulate.

    Attributes:
        system: Built-in machine name.
        seed: Generator seed of the run.
        duration_s: Length of the run.
        faults: Injected faults (none for a healthy run).
    """

    system: str
    seed: int
    duration_s: float
    faults: tuple[FaultSpec, ...]

    def simulate(self) -> Run:
        """Generate the run."""
        return generate(self.system, duration_s=self.duration_s, faults=self.faults, seed=self.seed)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (for checkpoint metadata)."""
        return {
            "system": self.system,
            "seed": self.seed,
            "hours": self.duration_s / 3600.0,
            "faults": [str(fault) for fault in self.faults],
        }


@dataclass(frozen=True)
class DemoPlan:
    """Demo data to generate: machines, hours of each, and the seed of everything random.

    Each machine gets ``cycles`` cycles of one run per fault mode plus one healthy run, with
    ``cycles`` the smallest number keeping runs at most ``max_run_hours`` long.

    Attributes:
        systems: Built-in machine names.
        hours: Simulated hours per machine.
        seed: Seed of run seeds and fault parameters.
        max_run_hours: Longest run.
    """

    systems: tuple[str, ...]
    hours: float
    seed: int = 0
    max_run_hours: float = MAX_RUN_HOURS

    def __post_init__(self) -> None:
        if not self.systems:
            raise ValueError("a demo plan needs at least one system")
        if not (math.isfinite(self.hours) and self.hours > 0):
            raise ValueError(f"hours must be a positive number, got {self.hours}")

    def recipes(self) -> list[RunRecipe]:
        """Every run of the plan, in a fixed order."""
        return [recipe for system in self.systems for recipe in self._system_recipes(system)]

    def _system_recipes(self, system: str) -> list[RunRecipe]:
        spec = builtin_spec(system)
        slots = [*spec.fault_ids, None]  # one run per fault mode, then a healthy one
        cycles = max(1, math.ceil(self.hours / len(slots) / self.max_run_hours))
        count = len(slots) * cycles
        duration_s = round(self.hours * 3600.0 / count)
        tag = zlib.crc32(system.encode("utf-8"))
        recipes = []
        for index in range(count):
            entropy = np.random.SeedSequence([self.seed, tag, index])
            run_seed = int(entropy.generate_state(1)[0])
            fault_id = slots[index % len(slots)]
            faults: tuple[FaultSpec, ...] = ()
            if fault_id is not None:
                rng = np.random.default_rng(entropy.spawn(1)[0])
                faults = (random_fault(fault_id, duration_s, rng),)
            recipes.append(RunRecipe(system, run_seed, float(duration_s), faults))
        return recipes

    def describe(self) -> dict[str, Any]:
        """JSON-ready description: systems, hours, seed and every run with its faults."""
        return {
            "source": "demo",
            "systems": list(self.systems),
            "hours_per_system": self.hours,
            "seed": self.seed,
            "runs": [recipe.describe() for recipe in self.recipes()],
        }


def random_fault(fault_id: str, duration_s: float, rng: np.random.Generator) -> FaultSpec:
    """A fault with random onset (5-50 % into the run), progression, severity (0.5-1) and
    time to failure (0.4-1.6 times the rest of the run)."""
    onset = float(round(rng.uniform(0.05, 0.5) * duration_s))
    names = [name for name in PROGRESSIONS if name in _PROGRESSION_WEIGHTS]
    weights = np.array([_PROGRESSION_WEIGHTS[name] for name in names])
    progression = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    severity = float(round(rng.uniform(0.5, 1.0), 3))
    time_to_failure = float(round(rng.uniform(0.4, 1.6) * (duration_s - onset)))
    return FaultSpec(fault_id, onset, progression, severity, max(time_to_failure, 60.0))


@dataclass(frozen=True, eq=False, repr=False)
class LabelledWindow:
    """One encoded window with its labels at the window's last step.

    Attributes:
        sample: The encoded window.
        health: Component health.
        fault_index: Component fault as an index into its candidates (0 = normal).
        fault_code: Component fault as an index into ``("normal", *spec.fault_ids)``.
        rul_hours: Remaining useful life per component (capped).
        sensor_label: Whether an active fault affects the sensor.
        sensor_effect: Largest effect (0 healthy, 1 at failure) of the active faults that
            affect the sensor: how developed its anomaly is.

    Shapes:
        health, fault_index, fault_code, rul_hours: ``[C]``.
        sensor_label, sensor_effect: ``[S]``.
    """

    sample: GraphSample
    health: npt.NDArray[np.float32]
    fault_index: npt.NDArray[np.int64]
    fault_code: npt.NDArray[np.int64]
    rul_hours: npt.NDArray[np.float32]
    sensor_label: npt.NDArray[np.bool_]
    sensor_effect: npt.NDArray[np.float32]

    @property
    def system(self) -> str:
        """Machine name of the window's spec."""
        return self.sample.graph.name

    @property
    def healthy(self) -> bool:
        """No component of the machine has an active fault."""
        return not bool(self.fault_code.any())

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(system={self.system!r}, "
            f"faulty_components={int((self.fault_code > 0).sum())}, "
            f"affected_sensors={int(self.sensor_label.sum())})"
        )


def label_windows(
    run: Run,
    contract: FeatureContract,
    *,
    stride_s: float = DEFAULT_STRIDE_S,
    cache: SpecGraphCache | None = None,
) -> list[LabelledWindow]:
    """Cut a run into encoded, labelled windows.

    Args:
        run: A simulated or recorded run with labels.
        contract: Window length and time base.
        stride_s: Seconds between window starts.
        cache: Spec graph cache under ``contract`` (a fresh one when ``None``).

    Returns:
        One window per position that fits entirely in the run and holds at least one
        observed reading.
    """
    return labelled_windows(run, contract, stride_s=stride_s, cache=cache)[0]


def labelled_windows(
    run: Run,
    contract: FeatureContract,
    *,
    stride_s: float = DEFAULT_STRIDE_S,
    cache: SpecGraphCache | None = None,
) -> tuple[list[LabelledWindow], npt.NDArray[np.int64], int]:
    """:func:`label_windows`, with the step each window ends at and the count of windows
    left out for want of a single observed reading (a gap in a recorded run).

    Shapes:
        returned ends: ``[W]``.
    """
    graphs = cache or SpecGraphCache(contract)
    graph = graphs.get(run.spec)
    length = max(2, round(contract.window_steps * run.sample_rate_hz / contract.sample_rate_hz))
    stride = max(1, round(stride_s * run.sample_rate_hz))
    ends = np.arange(length - 1, run.steps, stride)
    rank = np.concatenate([[0], graph.fault_rank]).astype(np.int64)

    if run.faults:
        affected, effect = _scheduled_sensor_labels(run, graph.sensor_index, ends)
    else:  # a recorded run: sensor labels follow from its fault labels
        affected, effect = _recorded_sensor_labels(run, graph.sensor_index, ends)

    windows = []
    kept = []
    for row, end in enumerate(ends):
        codes = run.fault_codes[end].astype(np.int64)
        try:
            sample = encode_window(
                graph, run.readings[end - length + 1 : end + 1], run.sample_rate_hz, contract
            )
        except InvalidInput as exc:
            if exc.reason != DeadLetterReason.EMPTY_READINGS.value:
                raise
            continue  # nothing observed in the window: nothing to learn or score
        kept.append(int(end))
        windows.append(
            LabelledWindow(
                sample=sample,
                health=run.health[end].astype(np.float32),
                # An unknown fault (code -1, recorded runs) stays unknown: index -1.
                fault_index=np.where(codes >= 0, rank[np.maximum(codes, 0)], -1),
                fault_code=codes,
                rul_hours=run.rul_hours[end].astype(np.float32),
                sensor_label=affected[row],
                sensor_effect=effect[row],
            )
        )
    return windows, np.asarray(kept, dtype=np.int64), int(ends.size) - len(kept)


def _scheduled_sensor_labels(
    run: Run, sensor_index: Mapping[str, int], ends: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
    """Affected sensors and effects at ``ends`` from a simulated run's fault schedule.

    Shapes:
        returned: ``[len(ends), S]`` each.
    """
    affected = np.zeros((ends.size, len(sensor_index)), dtype=bool)
    effect = np.zeros((ends.size, len(sensor_index)), dtype=np.float32)
    for fault in run.faults:
        mode = run.spec.fault_mode(fault.fault_id)
        columns = np.array([sensor_index[sensor] for sensor in mode.affected_sensors])
        active = run.t_s[ends] >= fault.onset_s
        affected[np.ix_(active, columns)] = True
        strength = fault.effect(run.t_s[ends]).astype(np.float32)[:, None]
        effect[:, columns] = np.maximum(effect[:, columns], strength)
    return affected, effect


def _recorded_sensor_labels(
    run: Run, sensor_index: Mapping[str, int], ends: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
    """Affected sensors and effects at ``ends`` from fault labels alone (a recorded run):
    a component's labelled fault affects its mode's sensors, with the effect its health
    implies (1 where the health is unknown).

    Shapes:
        returned: ``[len(ends), S]`` each.
    """
    affected = np.zeros((ends.size, len(sensor_index)), dtype=bool)
    effect = np.zeros((ends.size, len(sensor_index)), dtype=np.float32)
    codes = run.fault_codes[ends]
    for code in np.unique(codes[codes > 0]):
        mode = run.spec.fault_modes[int(code) - 1]
        column = run.spec.component_index[mode.component]
        active = codes[:, column] == code
        columns = np.array([sensor_index[sensor] for sensor in mode.affected_sensors])
        affected[np.ix_(active, columns)] = True
        health = run.health[ends, column].astype(np.float64)
        strength = np.where(np.isfinite(health), (1.0 - health) / (1.0 - FAILURE_HEALTH), 1.0)
        strength = np.where(active, np.clip(strength, 0.0, 1.0), 0.0).astype(np.float32)
        effect[:, columns] = np.maximum(effect[:, columns], strength[:, None])
    return affected, effect


def demo_windows(
    recipes: Iterable[RunRecipe],
    contract: FeatureContract,
    *,
    stride_s: float = DEFAULT_STRIDE_S,
    cache: SpecGraphCache | None = None,
) -> list[LabelledWindow]:
    """Simulate each recipe and cut it into labelled windows."""
    graphs = cache or SpecGraphCache(contract)
    return [
        window
        for recipe in recipes
        for window in label_windows(recipe.simulate(), contract, stride_s=stride_s, cache=graphs)
    ]


def file_windows(
    paths: Sequence[str | Path],
    contract: FeatureContract,
    *,
    stride_s: float = DEFAULT_STRIDE_S,
    cache: SpecGraphCache | None = None,
) -> tuple[list[LabelledWindow], list[Run]]:
    """Read run files (docs/data-format.md) and cut them into labelled windows.

    Returns:
        The windows, and the runs they came from (for descriptions).

    Raises:
        RunFormatError: A file is not a run.
    """
    graphs = cache or SpecGraphCache(contract)
    runs = [read_run(path) for path in paths]
    windows = [
        window
        for run in runs
        for window in label_windows(run, contract, stride_s=stride_s, cache=graphs)
    ]
    return windows, runs


def describe_files(paths: Sequence[str | Path], runs: Sequence[Run]) -> dict[str, Any]:
    """JSON-ready description of training data read from files."""
    return {
        "source": "files",
        "runs": [
            {
                "file": Path(path).name,
                "system": run.system,
                "seed": run.seed,
                "hours": run.steps / run.sample_rate_hz / 3600.0,
                "faults": [str(fault) for fault in run.faults],
            }
            for path, run in zip(paths, runs, strict=True)
        ],
    }


@dataclass(frozen=True, eq=False, repr=False)
class LabelledBatch:
    """Labelled windows collated for one forward pass.

    Attributes:
        batch: The graph batch.
        targets: Component labels for :func:`worker.model.model_loss`.
        sensor_label: Whether an active fault affects each node's sensor.
        sensor_effect: Effect of the active faults affecting each node's sensor.
        fault_code: Each component's fault as an index into its machine's vocabulary.
        systems: Machine name of each graph.

    Shapes:
        sensor_label: ``[N]`` bool; sensor_effect: ``[N]`` float32; fault_code: ``[C]`` int64.
    """

    batch: GraphBatch
    targets: Targets
    sensor_label: Tensor
    sensor_effect: Tensor
    fault_code: Tensor
    systems: tuple[str, ...] = field(default=())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.batch!r})"


def collate_labelled(windows: Sequence[LabelledWindow]) -> LabelledBatch:
    """Collate windows and their labels (unknown ones marked not valid).

    Raises:
        ValueError: No windows.
    """
    batch = collate([window.sample for window in windows])

    def cat(name: str) -> Tensor:
        return torch.from_numpy(np.concatenate([getattr(w, name) for w in windows]))

    health = cat("health")
    fault_index = cat("fault_index")
    rul = cat("rul_hours")
    # A recorded run's unknown labels (NaN health or life, fault -1) are masked out.
    targets = Targets(
        component_health=health.clamp(0.0, 1.0),
        health_valid=torch.isfinite(health),
        fault_index=fault_index,
        fault_valid=fault_index >= 0,
        rul_hours=rul,
        rul_valid=torch.isfinite(rul),
    )
    return LabelledBatch(
        batch=batch,
        targets=targets,
        sensor_label=cat("sensor_label"),
        sensor_effect=cat("sensor_effect"),
        fault_code=cat("fault_code"),
        systems=tuple(window.system for window in windows),
    )
