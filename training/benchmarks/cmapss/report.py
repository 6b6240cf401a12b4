"""The C-MAPSS benchmark's figure: predicted against true remaining useful life.

``plot_rul`` draws the GNN's and the baseline's predictions at each engine's scored cycle,
and the GNN's along a few whole engines, to a PNG (matplotlib's Agg backend, no display).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    # Annotations only: at run time the benchmark imports this module, not the reverse.
    from training.benchmarks.cmapss.run import EvaluationSet


def plot_rul(
    path: Path,
    evaluation: EvaluationSet,
    predicted: npt.NDArray[np.float64],
    baseline: npt.NDArray[np.float64],
    *,
    cap: int,
    trajectories: int = 4,
) -> None:
    """Predicted against true RUL: at the scored cycle of each engine, and along a few.

    Shapes:
        predicted, baseline: ``[W]`` over ``evaluation.rows``.
    """
    scored = evaluation.scored_index
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = np.minimum(evaluation.truth, cap)
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    left.plot([0, cap], [0, cap], color="grey", linewidth=1, label="perfect")
    left.scatter(truth, baseline[scored], s=18, marker="x", color="tab:orange", label="baseline")
    left.scatter(truth, predicted[scored], s=22, color="tab:blue", label="GNN")
    left.set(xlabel="true RUL (cycles, capped)", ylabel="predicted RUL (cycles)")
    left.set_title(f"at the scored cycle of {len(evaluation.units)} engines")
    left.legend()
    units = evaluation.recording.unit[evaluation.rows]
    cycles = evaluation.recording.cycle[evaluation.rows]
    colours = plt.get_cmap("tab10")
    for index, unit in enumerate(evaluation.units[:trajectories]):
        rows = units == unit
        colour = colours(index)
        right.plot(
            cycles[rows], np.minimum(evaluation.row_truth[rows], cap), color=colour, linestyle="--"
        )
        right.plot(cycles[rows], predicted[rows], color=colour, label=f"engine {unit}")
    right.set(xlabel="cycle", ylabel="RUL (cycles)")
    right.set_title("GNN along whole engines (dashed: truth)")
    right.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
