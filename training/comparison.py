"""The GNN beside the same-run baseline, overall and per run, with plain-words warnings.

Both models' window predictions go through :func:`training.window_scores.window_metrics`. The GNN
is expected to beat the baseline by :data:`MARGIN` on the window anomaly AUROC and the fault
macro-F1, and its outputs to vary across windows by more than :data:`FLAT_STD`; where it does
not, :func:`honesty_warnings` says so (``--strict`` turns that into exit status 1). A metric
that is undefined for the data (one class only) carries its reason instead of a number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from training.baseline import BaselineError, WindowStatsBaseline
from training.data.demo import LabelledWindow
from training.data.runs import RunWindows, flatten
from training.metrics import finite_or_none
from training.window_scores import (
    WindowPredictions,
    component_accuracy,
    gnn_window_predictions,
    undefined_reasons,
    window_metrics,
)
from worker.model import UniversalTemporalGNN

MARGIN: Final = 0.01
"""How much better than the baseline the GNN must be on a compared metric."""

FLAT_STD: Final = 0.01
"""Standard deviation across windows below which an output counts as not varying."""

COMPARED: Final = (
    ("window_anomaly_auroc", "window anomaly AUROC"),
    ("fault_macro_f1", "fault macro-F1"),
)
"""Metrics (higher is better) on which the GNN must beat the baseline: key, words."""

COMPARED_LOWER: Final = (("rul_rmse_hours", "remaining-life RMSE (hours)"),)
"""Metrics (lower is better) on which the GNN must beat the baseline by a share
:data:`MARGIN` of the baseline's value: key, words."""


@dataclass(frozen=True)
class Comparison:
    """GNN and baseline metrics on the same windows.

    Attributes:
        gnn: The GNN's :func:`window_metrics` over every window.
        baseline: The baseline's (None when no baseline was fitted).
        per_run: One row per run: ``run``, ``system``, ``windows``, ``conditions``, ``gnn``,
            ``baseline``.
        by_component: One row per component with a known label: ``component``, ``gnn``
            and ``baseline`` (the share of windows whose fault label is right; the baseline's
            None when there is none).
        undefined: Metric -> why it is undefined for these windows.
        warnings: Plain-words warnings (empty when the GNN holds up).
        baseline_note: What the baseline was fitted on, or why there is none.
    """

    gnn: Mapping[str, Any]
    baseline: Mapping[str, Any] | None
    per_run: tuple[Mapping[str, Any], ...]
    by_component: tuple[Mapping[str, Any], ...]
    undefined: Mapping[str, str]
    warnings: tuple[str, ...]
    baseline_note: str

    @property
    def score(self) -> float:
        """How training options are chosen on validation runs (higher is better): the GNN's
        mean of the :data:`COMPARED` metrics defined on these windows, plus, for each
        :data:`COMPARED_LOWER` metric defined, its value negated as a share of the baseline's
        (of the cap where there is no baseline), so that 10 % less remaining-life error
        weighs like 0.1 more F1; ``-inf`` when nothing is defined."""
        from machines import RUL_CAP_HOURS

        higher = [float(self.gnn[key]) for key, _ in COMPARED if _finite(self.gnn.get(key))]
        lower = []
        for key, _ in COMPARED_LOWER:
            if _finite(self.gnn.get(key)):
                scale = (self.baseline or {}).get(key)
                lower.append(
                    -float(self.gnn[key]) / (scale if _finite(scale) and scale else RUL_CAP_HOURS)
                )
        if not higher and not lower:
            return -math.inf
        return (sum(higher) / len(higher) if higher else 0.0) + sum(lower)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``nan`` becomes ``null``; the reasons say why)."""
        return finite_or_none(
            {
                "gnn": dict(self.gnn),
                "baseline": None if self.baseline is None else dict(self.baseline),
                "undefined": dict(self.undefined),
                "warnings": list(self.warnings),
                "baseline_note": self.baseline_note,
                "margin": MARGIN,
                "flat_std": FLAT_STD,
                "per_run": [dict(row) for row in self.per_run],
                "by_component": [dict(row) for row in self.by_component],
            }
        )


def named(runs: Sequence[RunWindows]) -> list[tuple[str, Sequence[LabelledWindow]]]:
    """``(name, windows)`` of each run, as the predictors take them."""
    return [(run.name, run.windows) for run in runs]


def fit_baseline(train: Sequence[RunWindows], *, seed: int) -> WindowStatsBaseline:
    """The baseline fitted on exactly the training windows of ``train``."""
    return WindowStatsBaseline(seed=seed).fit(flatten(train))


def compare_models(
    model: UniversalTemporalGNN,
    runs: Sequence[RunWindows],
    baseline: WindowStatsBaseline | None,
    *,
    baseline_note: str,
    where: str = "validation",
) -> Comparison:
    """Predict ``runs`` with the GNN and the baseline and compare them."""
    gnn = gnn_window_predictions(model, named(runs))
    other = None
    if baseline is not None:
        try:
            other = baseline.predict(named(runs))
        except BaselineError as exc:
            baseline_note = f"baseline: none: {exc}"
    return compare(gnn, other, runs, baseline_note=baseline_note, where=where)


def compare(
    gnn: WindowPredictions,
    baseline: WindowPredictions | None,
    runs: Sequence[RunWindows],
    *,
    baseline_note: str,
    where: str = "validation",
) -> Comparison:
    """Metrics of both models, overall and per run, the reasons and the warnings."""
    gnn_metrics = window_metrics(gnn)
    base_metrics = None if baseline is None else window_metrics(baseline)
    rows = []
    for run in runs:
        keep = gnn.run == run.name
        rows.append(
            {
                "run": run.name,
                "system": run.system,
                "windows": len(run.windows),
                "conditions": list(run.conditions),
                "gnn": window_metrics(gnn.subset(keep)),
                "baseline": None if baseline is None else window_metrics(baseline.subset(keep)),
            }
        )
    ours = component_accuracy(gnn)
    theirs = {} if baseline is None else component_accuracy(baseline)
    by_component = tuple(
        {"component": name, "gnn": value, "baseline": theirs.get(name)}
        for name, value in ours.items()
    )
    undefined = undefined_reasons(gnn, where)
    warnings = honesty_warnings(gnn_metrics, base_metrics, undefined, where=where)
    return Comparison(
        gnn_metrics,
        base_metrics,
        tuple(rows),
        by_component,
        undefined,
        tuple(warnings),
        baseline_note,
    )


def honesty_warnings(
    gnn: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    undefined: Mapping[str, str],
    *,
    where: str = "validation",
) -> list[str]:
    """Warnings, in plain words, where the GNN is not better than the baseline by
    :data:`MARGIN` or its outputs barely vary across windows (below :data:`FLAT_STD`)."""
    out: list[str] = []
    if baseline is not None:
        for key, words in COMPARED:
            if key in undefined or not (_finite(gnn.get(key)) and _finite(baseline.get(key))):
                continue
            ours, theirs = float(gnn[key]), float(baseline[key])
            # Both metrics top out at 1: level with a perfect baseline is all there is.
            if ours < min(theirs + MARGIN, 1.0):
                out.append(
                    f"the GNN is not better than the window-statistics baseline on {where} "
                    f"{words}: {ours:.3f} against {theirs:.3f} (the GNN must win by at least "
                    f"{MARGIN:g}); {_NO_LEARNING}"
                )
        for key, words in COMPARED_LOWER:
            if key in undefined or not (_finite(gnn.get(key)) and _finite(baseline.get(key))):
                continue
            ours, theirs = float(gnn[key]), float(baseline[key])
            if ours > theirs * (1.0 - MARGIN):
                out.append(
                    f"the GNN is not better than the window-statistics baseline on {where} "
                    f"{words}: {ours:.1f} against {theirs:.1f} (the GNN must be lower by at "
                    f"least {MARGIN:.0%}); {_NO_LEARNING}"
                )
    # With one kind of window only (every one faulty, say), a flat fault probability is
    # the right answer, not a sign of a model that learned nothing.
    both_kinds = "window_anomaly_auroc" not in undefined
    flat = [
        (key, words)
        for key, words in (
            ("fault_score_std", "fault probability"),
            ("anomaly_score_std", "anomaly score"),
        )
        if _finite(gnn.get(key))
        and gnn[key] < FLAT_STD
        and (both_kinds or key != "fault_score_std")
    ]
    for key, words in flat:
        out.append(
            f"the GNN's {words} barely varies across {where} windows (standard deviation "
            f"{gnn[key]:.2g}, below {FLAT_STD:g}): it gives about the same answer for every window"
        )
    return out


_NO_LEARNING: Final = (
    "a random forest on per-window statistics of the same training windows does at least as "
    "well, so these figures show no learning beyond it"
)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def overlap_note(evaluated: Sequence[RunWindows], trained: Sequence[str]) -> str | None:
    """A warning when evaluated runs were trained on (by resolved file path)."""
    used = set(trained)
    seen = [
        run.name for run in evaluated if run.path is not None and str(run.path.resolve()) in used
    ]
    if not seen:
        return None
    return (
        f"{len(seen)} evaluated run(s) were used in training ({', '.join(seen[:5])}"
        f"{', ...' if len(seen) > 5 else ''}): their figures are not held-out figures"
    )
