"""The SKAB benchmark: the GNN's forecast residual as a point-wise anomaly detector.

Protocol (../shared/data/README.md): per experiment file, the first ``train_rows`` rows are
training data (assumed normal; their labels are never read) and the rest is test data;
point-wise F1, FAR % and MAR % over the concatenated test parts.

The GNN reads the rig as a three-component graph (motor, pump, hydraulic loop). Each file
gets its own spec whose normal ranges are fitted on its training prefix, so readings are
normalised per file exactly as a deployment would calibrate a new machine. One model is
trained (:mod:`training.benchmarks.skab.detector`), self-supervised, to forecast the last H
steps of windows cut from the training prefixes and from anomaly-free.csv; inputs are
sometimes level-shifted while the target is not, so that the forecast keeps to the level the
calibration and the other sensors imply and a sensor that leaves it keeps a large residual
for as long as it stays away. The score of row t is the mean ``sensor_anomaly`` of the state
sensors (all but the two temperatures, see :attr:`SkabBenchConfig.state_kinds`) in the
window ending at t, averaged over a short trailing window (causal); each file's threshold is
a quantile of its training-prefix scores times a fixed factor. Residual scales come from
anomaly-free rows never trained on. PCA T²+Q, fitted per file on the same prefixes, runs
beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import torch

from schemas.spec import SystemSpec
from training.benchmarks.skab.dataset import (
    EXPERIMENTS,
    Recording,
    Split,
    read_anomaly_free,
    read_experiments,
    rig_spec,
    split,
)
from training.benchmarks.skab.detector import (
    SCORE_BATCH,
    Tick,
    TrainedDetector,
    train_detector,
)
from training.benchmarks.skab.scoring import (
    fit_pca,
    pca_statistics,
    point_metrics,
    prefix_threshold,
    trailing_mean,
)
from training.fit import torch_threads
from worker.model import (
    FeatureContract,
    GraphSample,
    ModelConfig,
    SpecGraph,
    collate,
    encode_window,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PUBLISHED: Final = {
    "conv_ae": {"f1": 0.78, "far_pct": 13.55, "mar_pct": 28.02},
    "mset": {"f1": 0.78, "far_pct": 39.73, "mar_pct": 14.13},
    "pca_t2_q": {"f1": 0.76},
    "lstm_ae": {"f1": 0.74},
    "isolation_forest": {"f1": 0.29},
}
PLOTTED: Final = ("valve1/0", "valve2/1", "other/9", "other/13")
"""Experiments drawn by :func:`plot_scores`: one of each kind of anomaly."""
SOURCE: Final = "SKAB leaderboard, outlier detection, github.com/waico/SKAB"


@dataclass(frozen=True)
class SkabBenchConfig:
    """Everything that decides the result.

    Attributes:
        train_rows: Training prefix of each file.
        seed: Seed of initialisation, shuffling and augmentation.
        experiments: Files to use (``valve1/0``); the protocol uses all 34.
        use_anomaly_free: Also train on ``anomaly-free.csv``.
        free_chunk_rows: anomaly-free.csv is cut into pseudo-experiments of this many rows,
            each calibrated on its first ``train_rows`` rows, as the experiments are.
        free_holdout_chunks: The last pieces of anomaly-free.csv are not trained on; their
            rows after calibration fit the residual scales.
        window_steps: Window length T (steps, 1 Hz).
        forecast_horizon: Last H steps forecast from the first T - H.
        train_stride: Rows between training windows.
        epochs: Passes over the training windows (fixed: no early stopping).
        batch_size: Windows per optimiser step.
        learning_rate: AdamW learning rate, cosine-decayed to a tenth.
        weight_decay: AdamW weight decay.
        level_shift_rate: Probability that a training sensor's input steps are shifted (its
            target is not).
        level_shift_range: Size of a shift, in normal half-widths (uniform, either sign).
        state_kinds: Sensor kinds whose level tracks the rig's present state: only these are
            level-shifted in training and scored. The temperatures are inputs only: the
            motor body and the water integrate heat over minutes, so their level drifts in
            normal operation and stays off long after an anomaly has ended.
        model: Architecture.
        smoothing_steps: Trailing mean of the point score over this many rows (causal).
        threshold_quantile: Quantile of a file's training-prefix scores...
        threshold_factor: ...times this factor is the file's threshold.
        pca_variance: PCA baseline: components explaining this share of the variance.
        pca_quantile: PCA baseline: quantile of the prefix's T² and Q as control limits.
        threads: Torch intra-op threads (part of the result: sums depend on the split).
    """

    train_rows: int = 400
    seed: int = 0
    experiments: tuple[str, ...] = EXPERIMENTS
    use_anomaly_free: bool = True
    free_chunk_rows: int = 1150
    free_holdout_chunks: int = 2
    window_steps: int = 30
    forecast_horizon: int = 5
    train_stride: int = 2
    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    level_shift_rate: float = 0.3
    level_shift_range: tuple[float, float] = (0.3, 2.0)
    state_kinds: tuple[str, ...] = ("vibration", "current", "voltage", "pressure", "flow")
    model: ModelConfig = field(
        default_factory=lambda: ModelConfig(
            hidden=32,
            layers=2,
            heads=4,
            dropout=0.0,
            temporal_channels=16,
            window_stats=False,  # the published figures' architecture (docs/benchmarks.md)
            identity_buckets=0,
            component_messages=False,
        )
    )
    smoothing_steps: int = 10
    threshold_quantile: float = 0.99
    threshold_factor: float = 1.0
    pca_variance: float = 0.9
    pca_quantile: float = 0.99
    threads: int = 1

    def contract(self) -> FeatureContract:
        """The feature contract windows are encoded under (untrained residual scales)."""
        return FeatureContract(
            window_steps=self.window_steps,
            forecast_horizon=self.forecast_horizon,
            known_component_types=("centrifugal_pump", "electric_motor", "water_loop"),
        )


@dataclass(frozen=True, eq=False)
class Calibrated:
    """One recording with the spec fitted on its training rows.

    Attributes:
        recording: The file.
        train_rows: Rows fitted on; the rest is scored only.
        spec: The rig, normal ranges from rows ``[0, train_rows)``.
        graph: The spec's graph under the benchmark's contract.
    """

    recording: Recording
    train_rows: int
    spec: SystemSpec
    graph: SpecGraph


def calibrate(recording: Recording, train_rows: int, contract: FeatureContract) -> Calibrated:
    """Fit the recording's spec on its first ``train_rows`` rows only."""
    spec = rig_spec(
        "skab-" + recording.name.replace("/", "-"),
        recording.values[:train_rows],
        description=f"SKAB pump rig, calibrated on the first {train_rows} rows of {recording.name}",
    )
    return Calibrated(recording, train_rows, spec, SpecGraph.build(spec, contract))


@dataclass(frozen=True, eq=False)
class TrainingData:
    """The recordings behind the model, each calibrated on its own first rows.

    Attributes:
        experiments: Every experiment, calibrated on its training prefix; only the prefix
            is trained on.
        free_train: Pieces of anomaly-free.csv trained on whole.
        free_holdout: Later pieces of anomaly-free.csv, never trained on: their rows after
            the calibration rows fit the residual scales (normal operation after
            calibration, as in a test part).
    """

    experiments: list[Calibrated]
    free_train: list[Calibrated]
    free_holdout: list[Calibrated]


def training_data(
    splits: Sequence[Split], anomaly_free: Recording | None, config: SkabBenchConfig
) -> TrainingData:
    """Calibrate every experiment on its prefix; cut anomaly-free.csv into pseudo-experiments
    of ``free_chunk_rows`` rows, each calibrated on its first ``train_rows`` rows."""
    contract = config.contract()
    experiments = [calibrate(s.recording, s.train_rows, contract) for s in splits]
    pieces: list[Calibrated] = []
    if anomaly_free is not None:
        chunk = config.free_chunk_rows
        for index, start in enumerate(range(0, anomaly_free.rows - chunk + 1, chunk)):
            piece = Recording(
                name=f"anomaly-free/{index}",
                path=anomaly_free.path,
                values=anomaly_free.values[start : start + chunk],
                labels=None,
            )
            pieces.append(calibrate(piece, config.train_rows, contract))
    cut = max(0, len(pieces) - config.free_holdout_chunks)
    return TrainingData(experiments, pieces[:cut], pieces[cut:])


def window_samples(
    item: Calibrated, ends: Sequence[int], contract: FeatureContract
) -> list[GraphSample]:
    """Encode the windows ending at rows ``ends`` (inclusive); early rows get a shorter,
    left-padded window."""
    values = item.recording.values
    steps = contract.window_steps
    return [
        encode_window(item.graph, values[max(0, end - steps + 1) : end + 1], 1.0, contract)
        for end in ends
    ]


def training_samples(data: TrainingData, config: SkabBenchConfig) -> list[GraphSample]:
    """Full windows inside each experiment's prefix and inside the anomaly-free pieces
    trained on, every ``train_stride`` rows."""
    contract = config.contract()
    samples: list[GraphSample] = []
    first = config.window_steps - 1
    for item in data.experiments:
        samples += window_samples(
            item, range(first, item.train_rows, config.train_stride), contract
        )
    for item in data.free_train:
        rows = item.recording.rows
        samples += window_samples(item, range(first, rows, config.train_stride), contract)
    return samples


def holdout_samples(data: TrainingData, config: SkabBenchConfig) -> list[GraphSample]:
    """Windows ending after the calibration rows of the held-out anomaly-free pieces."""
    contract = config.contract()
    samples: list[GraphSample] = []
    for item in data.free_holdout:
        ends = range(item.train_rows, item.recording.rows, config.train_stride)
        samples += window_samples(item, ends, contract)
    return samples


def sensor_scores(detector: TrainedDetector, item: Calibrated) -> FloatArray:
    """``sensor_anomaly`` of the window ending at every row of the recording.

    Shapes:
        returned: ``[R, 8]``.
    """
    rows = item.recording.rows
    out = np.empty((rows, item.graph.num_nodes))
    with torch.inference_mode():
        for start in range(0, rows, SCORE_BATCH):
            ends = range(start, min(rows, start + SCORE_BATCH))
            batch = collate(window_samples(item, ends, detector.contract))
            anomaly = detector.model(batch).sensor_anomaly
            out[start : start + len(ends)] = anomaly.double().numpy().reshape(len(ends), -1)
    return out


def point_scores(
    sensor: FloatArray, scored: npt.NDArray[np.bool_], smoothing_steps: int
) -> FloatArray:
    """Mean over the ``scored`` sensors, then the trailing mean over ``smoothing_steps`` rows
    (causal: row t reads rows up to t only).

    Shapes:
        sensor: ``[R, S]``; scored: ``[S]``; returned: ``[R]``.
    """
    return trailing_mean(sensor[:, scored].mean(axis=1), smoothing_steps)


def run_skab_benchmark(
    config: SkabBenchConfig,
    data_dir: Path,
    *,
    tick: Tick | None = None,
    say: Callable[[str], None] | None = None,
) -> SkabRun:
    """Train, score every row, run the PCA baseline, and compute the metrics.

    Args:
        config: What to run.
        data_dir: The SKAB directory (``valve1/``, ``valve2/``, ``other/``, ``anomaly-free/``).
        tick: Training progress.
        say: Called with a line about each stage.

    Returns:
        The run: model, per-file scores and thresholds, metrics.

    Raises:
        ValueError: A file is missing or malformed, or ``train_rows`` does not fit a file.
    """
    tell = say or (lambda line: None)
    splits = [split(r, config.train_rows) for r in read_experiments(data_dir, config.experiments)]
    free = read_anomaly_free(data_dir) if config.use_anomaly_free else None
    data = training_data(splits, free, config)
    samples = training_samples(data, config)
    tell(
        f"training on {len(samples)} windows ({len(data.experiments)} prefixes, "
        f"{len(data.free_train)} anomaly-free pieces)"
    )
    with torch_threads(config.threads):  # scores, like weights, depend on the threads
        detector = train_detector(
            samples, config, scale_samples=holdout_samples(data, config), tick=tick
        )
        tell(f"trained in {detector.seconds:.1f} s; scoring {len(splits)} files")
        sensors = [sensor_scores(detector, item) for item in data.experiments]
    contract = detector.contract
    scored_kinds = np.isin(
        data.experiments[0].graph.sensor_kind if data.experiments else np.empty(0, np.int64),
        [contract.kind_index(kind) for kind in config.state_kinds],
    )
    files: dict[str, FileScores] = {}
    every_sensor: list[IntArray] = []
    pca_alarms: list[IntArray] = []
    for item, part, sensor in zip(data.experiments, splits, sensors, strict=True):
        for scored, kept in ((scored_kinds, True), (np.ones_like(scored_kinds), False)):
            score = point_scores(sensor, scored, config.smoothing_steps)
            threshold = prefix_threshold(
                score, part.train_rows, config.threshold_quantile, config.threshold_factor
            )
            file = FileScores(score, threshold, part.train_rows)
            if kept:
                files[item.recording.name] = file
            else:
                every_sensor.append(file.alarms())
        pca = fit_pca(part.train, config.pca_variance, config.pca_quantile, config.seed)
        t2, q = pca_statistics(pca, part.test)
        pca_alarms.append(((t2 > pca.t2_limit) | (q > pca.q_limit)).astype(np.int64))

    labels = np.concatenate([part.test_labels for part in splits])
    alarms = np.concatenate([f.alarms() for f in files.values()])
    results: dict[str, dict[str, float]] = {
        "gnn": {
            **point_metrics(labels, alarms),
            "training_s": round(detector.seconds, 1),
            "test_rows": int(labels.size),
        }
    }
    for group in sorted({name.split("/")[0] for name in files}):
        names = [name for name in files if name.split("/")[0] == group]
        results[f"gnn_{group}"] = point_metrics(
            np.concatenate([part.test_labels for part in splits if part.recording.name in names]),
            np.concatenate([files[name].alarms() for name in names]),
        )
    # The same model and threshold rule scoring the temperatures too, to show what
    # leaving them out of the score does.
    results["gnn_all_sensors"] = point_metrics(labels, np.concatenate(every_sensor))
    baselines = {"pca_t2_q": point_metrics(labels, np.concatenate(pca_alarms))}
    return SkabRun(config, detector, data, splits, files, results, baselines)


@dataclass(frozen=True, eq=False)
class FileScores:
    """One file's point scores and the threshold fitted on its prefix.

    Shapes:
        score: ``[R]``.
    """

    score: FloatArray
    threshold: float
    train_rows: int

    def alarms(self) -> IntArray:
        """1 where a test row's score passes the threshold.

        Shapes:
            returned: ``[R - train_rows]``.
        """
        return (self.score[self.train_rows :] > self.threshold).astype(np.int64)


@dataclass(frozen=True, eq=False)
class SkabRun:
    """Everything one run produced."""

    config: SkabBenchConfig
    detector: TrainedDetector
    data: TrainingData
    splits: list[Split]
    files: dict[str, FileScores]
    results: dict[str, dict[str, float]]
    baselines: dict[str, dict[str, float]]
