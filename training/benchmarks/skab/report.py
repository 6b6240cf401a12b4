"""A SKAB run's outputs: its result document, the checkpoint to serve and the score plot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from schemas.spec import SystemSpec
from training.benchmarks.skab.dataset import EXPERIMENTS, read_anomaly_free, rig_spec
from training.benchmarks.skab.run import PUBLISHED, SOURCE, SkabBenchConfig, SkabRun


def config_record(config: SkabBenchConfig, data_dir: Path) -> dict[str, Any]:
    """The config as JSON-ready data, with the data directory and the contract used."""
    record = asdict(config)
    record["experiments"] = (
        "all 34" if config.experiments == EXPERIMENTS else list(config.experiments)
    )
    contract = config.contract()
    record["contract"] = {
        "window_steps": contract.window_steps,
        "forecast_horizon": contract.forecast_horizon,
        "sample_rate_hz": contract.sample_rate_hz,
    }
    record["data_dir"] = str(data_dir)
    record["score"] = (
        "mean sensor_anomaly of the state_kinds sensors, trailing mean over smoothing_steps; "
        "threshold = threshold_quantile of the file's prefix scores * threshold_factor"
    )
    return record


def result(run: SkabRun, *, command: str, data_dir: Path) -> dict[str, Any]:
    """The result document (../BENCHMARKS "Result format")."""
    from training.benchmarks.report import result_document

    ours = run.results["gnn"]
    published = {name: {**metrics, "source": SOURCE} for name, metrics in PUBLISHED.items()}
    best = max(metrics["f1"] for metrics in PUBLISHED.values())
    return result_document(
        "skab",
        command=command,
        config=config_record(run.config, data_dir),
        results=run.results,
        baselines=run.baselines,
        published=published,
        ratios={
            "f1_vs_best_published": round(ours["f1"] / best, 4),
            "f1_vs_pca_baseline": round(ours["f1"] / run.baselines["pca_t2_q"]["f1"], 4)
            if run.baselines["pca_t2_q"]["f1"]
            else 0.0,
        },
    )


def serving_spec(data_dir: Path) -> SystemSpec:
    """The rig calibrated on the whole of anomaly-free.csv: the spec to serve the model with."""
    return rig_spec(
        "skab-pump-rig",
        read_anomaly_free(data_dir).values,
        description="SKAB pump rig (motor, centrifugal pump, water loop), normal ranges "
        "calibrated on anomaly-free.csv (Katser & Kozitsin 2020, doi "
        "10.34740/KAGGLE/DSV/1693952).",
    )


def save_model(run: SkabRun, path: Path, spec: SystemSpec) -> str:
    """Save the trained detector as a checkpoint the workers can register and serve.

    Returns:
        SHA-256 of the weights payload.
    """
    from training.metrics import finite_or_none
    from worker.model.loader import CheckpointMetadata, save_checkpoint

    detector = run.detector
    metadata = CheckpointMetadata(
        name="skab",
        version="1.0.0",
        systems={spec.name: ("normal", *spec.fault_ids)},
        training=finite_or_none(
            {
                "data": "SKAB (github.com/waico/SKAB): first train_rows rows of the 34 "
                "experiments and anomaly-free.csv; self-supervised forecasting, no labels",
                "config": config_record(run.config, Path("SKAB")),
                "train_windows": detector.train_windows,
                "seconds": round(detector.seconds, 1),
                "epoch_losses": [round(loss, 5) for loss in detector.losses],
            }
        ),
        metrics=finite_or_none({"skab_test": run.results["gnn"]}),
        description="Temporal GNN forecaster for the SKAB pump rig; only the forecast head "
        "(sensor_anomaly) is trained, the health and fault heads are not.",
    )
    return save_checkpoint(
        path, model=detector.model, contract=detector.contract, metadata=metadata
    )


def plot_scores(run: SkabRun, path: Path, names: Sequence[str]) -> None:
    """Point score, threshold and labels of a few experiments, one panel each (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [name for name in names if name in run.files]
    figure, axes = plt.subplots(len(shown), 1, figsize=(11, 2.4 * len(shown)), squeeze=False)
    labels = {part.recording.name: part.recording.labels for part in run.splits}
    for axis, name in zip(axes[:, 0], shown, strict=True):
        scores = run.files[name]
        rows = np.arange(len(scores.score))
        top = float(max(scores.score.max(), scores.threshold) * 1.05)
        truth = labels[name]
        if truth is not None:
            axis.fill_between(
                rows, 0, top, where=truth > 0, color="tab:red", alpha=0.15, label="anomaly (label)"
            )
        axis.plot(rows, scores.score, color="tab:blue", lw=0.9, label="GNN score")
        axis.axhline(scores.threshold, color="black", ls="--", lw=0.9, label="threshold")
        axis.axvline(scores.train_rows, color="tab:gray", lw=0.9, label="train | test")
        axis.set_xlim(0, len(rows))
        axis.set_ylim(0, top)
        axis.set_title(name, fontsize=9, loc="left")
        axis.set_ylabel("score")
    axes[0, 0].legend(loc="upper left", fontsize=7, ncols=4)
    axes[-1, 0].set_xlabel("row (s)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
