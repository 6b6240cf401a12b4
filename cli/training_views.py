"""How ``train`` and ``evaluate`` print what they measured: the metrics per machine, the GNN
beside the baseline (overall, per component, per run) and the warnings, as tables and plain
lines a person or ``grep`` reads."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from training.comparison import Comparison

_HEADS = (
    ("fault_macro_f1", "fault F1", "{:.3f}"),
    ("health_mae", "health MAE", "{:.3f}"),
    ("rul_mae_hours", "RUL MAE h", "{:.0f}"),
    ("anomaly_auroc", "sensor AUROC", "{:.3f}"),
    ("anomaly_auroc_developed", "AUROC developed", "{:.3f}"),
)


def describe_score(comparison: Comparison) -> str:
    """The compared validation metrics of the GNN (and the baseline) in one line."""
    from training.comparison import COMPARED, COMPARED_LOWER

    def value(metrics: Mapping[str, Any] | None, key: str) -> str:
        number = None if metrics is None else metrics.get(key)
        return "undefined" if number is None or not math.isfinite(number) else f"{number:.3f}"

    every = [*COMPARED, *COMPARED_LOWER]
    shown = [item for item in every if item[0] not in comparison.undefined] or list(COMPARED)
    parts = [
        f"{words} {value(comparison.gnn, key)} (baseline {value(comparison.baseline, key)})"
        for key, words in shown
    ]
    return "validation " + ", ".join(parts)


def metrics_table(title: str, metrics: Mapping[str, Any]) -> Table:
    """The headline metrics per machine and overall, from :func:`evaluate_windows` output."""
    table = Table(title=title)
    table.add_column("machine")
    for _, header, _ in _HEADS:
        table.add_column(header, justify="right")
    rows = [*sorted(metrics["per_system"].items()), ("all", metrics["overall"])]
    for system, values in rows:
        table.add_row(system, *(_cell(values, key, fmt) for key, _, fmt in _HEADS))
    if not metrics["overall"].get("faulty_components", 1):
        table.caption = "undefined: no component is faulty in these windows"
    return table


_COMPARED = (
    ("window_anomaly_auroc", "window anomaly AUROC", "{:.3f}"),
    ("fault_macro_f1", "fault macro-F1", "{:.3f}"),
    ("false_alarm_rate", "false alarms", "{:.2f}"),
    ("detection_rate", "detected", "{:.2f}"),
    ("run_accuracy", "runs right", "{:.2f}"),
    ("fault_score_std", "fault prob std", "{:.3f}"),
    ("anomaly_score_std", "anomaly std", "{:.3f}"),
    ("rul_rmse_hours", "RUL RMSE h", "{:.1f}"),
)


def _cell(values: Mapping[str, Any] | None, key: str, fmt: str) -> str:
    """A metric as text: ``undefined`` where it is not a finite number, ``none`` without a
    model (no baseline)."""
    if values is None:
        return "none"
    value = values.get(key)
    finite = isinstance(value, int | float) and math.isfinite(value)
    return fmt.format(value) if finite else "undefined"


def say(console: Console, line: str) -> None:
    """A line of plain words: no markup, no highlighting, never wrapped (grep finds it)."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def print_comparison(console: Console, title: str, comparison: Comparison) -> None:
    """The GNN and the baseline side by side, the reasons for undefined metrics and the
    warnings, each a line starting with WARNING."""
    table = Table(title=title)
    table.add_column("model")
    table.add_column("windows", justify="right")
    for _, header, _ in _COMPARED:
        table.add_column(header, justify="right")
    undefined = comparison.undefined
    for label, values in (("GNN", comparison.gnn), ("baseline", comparison.baseline)):
        windows = "-" if values is None else str(values["windows"])
        cells = [_cell(values, key, fmt) for key, _, fmt in _COMPARED]
        table.add_row(label, windows, *cells)
    console.print(table)
    if comparison.by_component:
        console.print(component_table(comparison))
    say(console, comparison.baseline_note)
    for key, header, _ in _COMPARED:
        if key in undefined:
            say(console, f"{header}: undefined, {undefined[key]}")
    for warning in comparison.warnings:
        say(console, f"WARNING: {warning}")


def component_table(comparison: Comparison) -> Table:
    """Per component: the share of windows whose fault label is right, GNN and baseline."""
    table = Table(title="fault label right, per component")
    table.add_column("component", no_wrap=True)
    table.add_column("GNN", justify="right")
    table.add_column("baseline", justify="right")
    for row in comparison.by_component:
        other = row["baseline"]
        table.add_row(
            row["component"], f"{row['gnn']:.3f}", "-" if other is None else f"{other:.3f}"
        )
    return table


def run_table(comparison: Comparison) -> Table:
    """One row per run: windows, labels present, and each metric as ``GNN / baseline``."""
    table = Table(title="per run (GNN / baseline)")
    for column in ("run", "windows", "labels", *(h for _, h, _ in _COMPARED[:5])):
        table.add_column(column, justify="left" if column in ("run", "labels") else "right")
    for row in comparison.per_run:
        cells = [
            f"{_cell(row['gnn'], key, fmt)} / {_cell(row['baseline'], key, fmt)}"
            for key, _, fmt in _COMPARED[:5]
        ]
        table.add_row(row["run"], str(row["windows"]), ", ".join(row["conditions"]), *cells)
    return table
