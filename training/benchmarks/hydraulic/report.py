"""The hydraulic benchmark's chart: per-target accuracy, GNN against the forest, per split."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from training.benchmarks.hydraulic.dataset import TARGETS
from training.benchmarks.hydraulic.run import BASELINE, SCHEMES


def plot_accuracy(document: Mapping[str, Any], path: Path) -> None:
    """Bar chart of per-target accuracy, GNN vs baseline, one panel per split scheme.

    Args:
        document: A result document of
            :func:`~training.benchmarks.hydraulic.run.run_hydraulic_benchmark`.
        path: PNG to write (its directory is created).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    schemes = [s for s in SCHEMES if f"gnn_{s}" in document["results"]]
    names = [t.name for t in TARGETS]
    positions = np.arange(len(names))
    figure, axes = plt.subplots(1, len(schemes), figsize=(6 * len(schemes), 4.2), sharey=True)
    axes_list = np.atleast_1d(axes).tolist()
    published = document["published"].get("helwig2015_17_sensors", {})
    for axis, scheme in zip(axes_list, schemes, strict=True):
        for offset, (label, metrics) in zip(
            (-0.2, 0.2),
            (
                ("GNN", document["results"][f"gnn_{scheme}"]),
                ("random forest", document["baselines"][f"{BASELINE}_{scheme}"]),
            ),
            strict=True,
        ):
            means = [metrics[f"{n}_accuracy"] for n in names]
            spread = [metrics[f"{n}_accuracy_std"] for n in names]
            bars = axis.bar(positions + offset, means, 0.4, yerr=spread, capsize=3, label=label)
            axis.bar_label(bars, labels=[f"{m:.2f}" for m in means], fontsize=7, padding=2)
        marks = [
            (i, published[f"{n}_accuracy"])
            for i, n in enumerate(names)
            if f"{n}_accuracy" in published
        ]
        if scheme == "random":  # published figures come from random cross-validation
            axis.scatter(
                [i for i, _ in marks],
                [v for _, v in marks],
                marker="_",
                s=500,
                linewidths=2,
                color="black",
                label="published, all 17 sensors (not comparable)",
                zorder=3,
            )
        axis.set_xticks(positions, names)
        axis.set_ylim(0, 1.08)
        axis.set_title(f"{scheme} {len(document['config']['fold_sizes'][scheme])}-fold split")
        axis.grid(axis="y", alpha=0.3)
    axes_list[0].set_ylabel("accuracy (mean over folds, std bars)")
    handles: dict[str, Any] = {}
    for axis in axes_list:
        for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    figure.legend(list(handles.values()), list(handles), loc="lower center", ncol=3, fontsize=9)
    figure.suptitle("UCI hydraulic rig, 1 Hz sensors: per-target accuracy")
    figure.tight_layout(rect=(0.0, 0.07, 1.0, 1.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
