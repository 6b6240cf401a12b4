"""``gnn-service evaluate`` on run files: per-run and overall metrics of a checkpoint, beside
the same-run baseline refitted on training run files.

The baseline is refitted on ``--baseline-from`` files when given, else on the checkpoint's
recorded training files when their paths still exist (for a file split in time, only on the
windows that trained); otherwise there is none, and the notes say which happened.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from machines import read_run
from training.baseline import WindowStatsBaseline
from training.comparison import Comparison, compare_models, fit_baseline, overlap_note
from training.data.runs import RunWindows, cut_runs, flatten, run_names
from training.evaluate import evaluate_windows
from training.train_data import recorded_training_files
from worker.model import FeatureContract, SpecGraphCache, UniversalTemporalGNN


@dataclass(frozen=True, eq=False)
class RunEvaluation:
    """A checkpoint's metrics on evaluated runs.

    Attributes:
        metrics: :func:`training.evaluate.evaluate_windows` output (sensor-level metrics).
        comparison: The GNN beside the baseline, overall and per run.
        overlap: Warnings about evaluated runs that were trained on.
    """

    metrics: Mapping[str, Any]
    comparison: Comparison
    overlap: tuple[str, ...]

    @property
    def warnings(self) -> tuple[str, ...]:
        """Every warning: evaluated runs that were trained on, then the comparison's."""
        return (*self.overlap, *self.comparison.warnings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: sensor-level metrics, the comparison with its per-run rows."""
        return {
            **dict(self.metrics),
            "comparison": self.comparison.to_dict(),
            "warnings": list(self.warnings),
        }


def evaluate_runs(
    model: UniversalTemporalGNN,
    contract: FeatureContract,
    training: Mapping[str, Any],
    runs: Sequence[RunWindows],
    *,
    baseline_from: Sequence[Path] = (),
    stride_s: float,
    seed: int = 0,
) -> RunEvaluation:
    """Evaluate ``model`` on ``runs`` and compare it with the baseline.

    Args:
        model: The checkpoint's network.
        contract: The checkpoint's contract.
        training: The checkpoint's training record.
        runs: The evaluated runs, with windows.
        baseline_from: Run files to fit the baseline on (overrides the recorded ones).
        stride_s: Seconds between the baseline's training windows from ``baseline_from``
            (recorded training files are cut at their recorded stride).
        seed: The baseline's seed.

    Raises:
        RunFormatError: A ``--baseline-from`` file is not a run.
    """
    recorded = recorded_training_files(dict(training))
    overlap = overlap_note(runs, [str(path) for path, _ in recorded])
    stride_steps = training.get("data", {}).get("files", {}).get("stride_steps")
    recorded_stride_s = stride_s if stride_steps is None else stride_steps / contract.sample_rate_hz
    train, note = _baseline_runs(
        contract, recorded, baseline_from, stride_s=stride_s, recorded_stride_s=recorded_stride_s
    )
    baseline: WindowStatsBaseline | None = None
    if train:
        # Refitted on the recorded files, it is training's baseline: same windows, same seed.
        recorded_seed = training.get("config", {}).get("seed")
        if not baseline_from and isinstance(recorded_seed, int):
            seed = recorded_seed
        baseline = fit_baseline(train, seed=seed)
        note += f", seed {seed}"
        missing = sorted({run.system for run in runs} - set(baseline.systems))
        if missing:
            note = f"baseline: none: its training files have no run of {', '.join(missing)}"
            baseline = None
    metrics = evaluate_windows(model, flatten(runs))
    comparison = compare_models(
        model, runs, baseline, baseline_note=note, where="the evaluated data"
    )
    return RunEvaluation(metrics, comparison, () if overlap is None else (overlap,))


def _baseline_runs(
    contract: FeatureContract,
    recorded: Sequence[tuple[Path, float | None]],
    baseline_from: Sequence[Path],
    *,
    stride_s: float,
    recorded_stride_s: float,
) -> tuple[list[RunWindows], str]:
    """The baseline's training runs and a note saying where they came from."""
    cache = SpecGraphCache(contract)
    if baseline_from:
        named = list(zip(run_names(baseline_from), map(read_run, baseline_from), strict=True))
        kept, _ = cut_runs(named, contract, stride_s=stride_s, cache=cache, paths=baseline_from)
        return kept, (
            f"baseline: refitted on --baseline-from ({len(kept)} of {len(named)} files give "
            "windows)"
        )
    if not recorded:
        return [], (
            "baseline: none: the checkpoint records no training run files (generated data or "
            "an older checkpoint); pass --baseline-from RUN_FILE... to compare"
        )
    absent = [str(path) for path, _ in recorded if not path.is_file()]
    if absent:
        return [], (
            f"baseline: none: {len(absent)} of the checkpoint's {len(recorded)} training files "
            f"are gone ({absent[0]}{', ...' if len(absent) > 1 else ''}); pass --baseline-from"
        )
    files = [path for path, _ in recorded]
    named = list(zip(run_names(files), map(read_run, files), strict=True))
    kept, _ = cut_runs(
        named,
        contract,
        stride_s=recorded_stride_s,
        cache=cache,
        paths=files,
    )
    until = dict(recorded)
    trimmed = []
    for run in kept:
        limit = until.get(run.path) if run.path is not None else None
        if limit is not None:
            rows = [i for i, end in enumerate(run.ends_s) if end <= limit]
            if not rows:
                continue
            run = run.part(rows, run.name)  # noqa: PLW2901 - the kept part replaces the run
        trimmed.append(run)
    return trimmed, (
        f"baseline: refitted on the checkpoint's {len(recorded)} recorded training run files "
        "(their training windows only)"
    )
