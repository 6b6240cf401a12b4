"""UCI hydraulic benchmark: the GNN against a tree ensemble, per target, on the same folds.

Protocol (../shared/docs/BENCHMARKS.md "hydraulic"): five targets (cooler, valve, pump,
accumulator, stable), each cycle one 60-step window of the eight 1 Hz sensors. The headline
is a grouped k-fold split in which a group is a contiguous run of identical component
conditions, so that no run has cycles on both sides; beside it, a random k-fold split over
cycles, which lets near-identical neighbours of a test cycle into training. Both are seeded,
and the GNN and the baseline see the same folds.

Per fold, the sensors' normal ranges (the model's normalisation) are fitted on the training
cycles only, a fresh :class:`~worker.model.UniversalTemporalGNN` is trained by the project's
one loop (:func:`training.fit.fit`) for a fixed number of epochs on the cross-entropy of
every component's candidates ("normal" plus its fault modes, which are the target's classes)
plus a small forecast term, and a random forest per target is fitted on per-cycle statistics
of the same sensors. Accuracy and macro-F1 are averaged over folds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from training.benchmarks.hydraulic.baseline import baseline_predictions
from training.benchmarks.hydraulic.dataset import (
    CYCLE_STEPS,
    SAMPLE_RATE_HZ,
    SENSORS,
    TARGETS,
    HydraulicData,
    component_of_target,
    condition_runs,
    fit_normal_ranges,
    hydraulic_spec,
)
from training.benchmarks.hydraulic.protocol import grouped_folds, random_folds
from training.metrics import accuracy, macro_f1

if TYPE_CHECKING:
    from worker.model import FeatureContract, GraphSample, ModelConfig, UniversalTemporalGNN

Tick = Callable[[str, int, int], None]
"""Progress report: ``(stage, done, total)``, after every training epoch."""

SCHEMES: Final = ("grouped", "random")
"""Split schemes; ``grouped`` is the headline."""

BASELINE: Final = "random_forest"

PUBLISHED: Final = {
    "helwig2015_17_sensors": {
        "cooler_accuracy": 1.0,
        "valve_accuracy": 1.0,
        "pump_accuracy": 0.99,
        "accumulator_accuracy": 0.904,
        "source": "Helwig, Pignanelli, Schuetze, I2MTC 2015, doi 10.1109/I2MTC.2015.7151267; "
        "all 17 sensors (100 Hz pressures, 10 Hz flows), random cross-validation; not "
        "comparable with the 1 Hz subset. Accumulator error 9.6 % as quoted in the data "
        "set's documentation.txt",
    },
    "schneider2017_17_sensors": {
        "accumulator_accuracy": 0.9965,
        "source": "Schneider, Helwig, Schuetze, tm - Technisches Messen 84(3) 2017, "
        "doi 10.1515/teme-2016-0072 (ALA + RFESVM); all 17 sensors, not comparable",
    },
}


def _default_model() -> ModelConfig:
    from worker.model import ModelConfig

    # Max pooling keeps the short SE transients (samples 9-10 of the cycle: valve); the
    # segment means keep where in the cycle the periodic SE dips fall (accumulator).
    return ModelConfig(
        window_stats=False,  # the published figures' architecture (docs/benchmarks.md)
        identity_buckets=0,
        component_messages=False,
        hidden=32,
        layers=2,
        heads=4,
        dropout=0.1,
        temporal_channels=16,
        dilations=(1, 2, 4, 8, 16),
        temporal_pool=("last", "mean", "max", "segments"),
        temporal_segments=6,
    )


@dataclass(frozen=True)
class HydraulicBenchConfig:
    """Everything that changes the result.

    Attributes:
        folds: Folds of each split scheme.
        seed: Seed of the folds and the forests, and of the GNN's training unless
            ``train_seed`` is given.
        train_seed: Seed of the GNN's initialisation, shuffling and dropout (None: ``seed``);
            another value measures the GNN's seed spread on the same folds.
        epochs: Training epochs per fold (fixed: no early stopping).
        batch_size: Cycles per optimiser step.
        learning_rate: AdamW learning rate, cosine-decayed to a tenth.
        weight_decay: AdamW weight decay.
        forecast_weight: Weight of the forecast loss beside the classification loss.
        forecast_horizon: Steps H the forecast head predicts.
        model: The GNN's hyper-parameters.
        threads: Torch intra-op threads while training.
        baseline_trees: Trees of each random forest.
        schemes: Split schemes to run.
    """

    folds: int = 5
    seed: int = 0
    train_seed: int | None = None
    epochs: int = 84
    batch_size: int = 64
    learning_rate: float = 1e-2
    weight_decay: float = 1e-2
    forecast_weight: float = 0.1
    forecast_horizon: int = 2
    model: ModelConfig = field(default_factory=_default_model)
    threads: int = 1
    baseline_trees: int = 100
    schemes: tuple[str, ...] = SCHEMES

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")
        if self.epochs < 1 or self.batch_size < 1 or self.threads < 1:
            raise ValueError("epochs, batch_size and threads must be >= 1")
        unknown = sorted(set(self.schemes) - set(SCHEMES))
        if unknown or not self.schemes:
            raise ValueError(f"schemes must be among {list(SCHEMES)}, got {list(self.schemes)}")

    @property
    def gnn_seed(self) -> int:
        """The seed the GNN's training derives its per-fold seeds from."""
        return self.seed if self.train_seed is None else self.train_seed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the result document."""
        data = asdict(self)
        data["model"] = self.model.to_dict()
        data["schemes"] = list(self.schemes)
        return data


def contract_for_rig(forecast_horizon: int) -> FeatureContract:
    """The feature contract: one 60-step cycle at 1 Hz, knowing the rig's component types."""
    from worker.model import FeatureContract

    spec = hydraulic_spec({sensor.id: (0.0, 1.0) for sensor in SENSORS})
    return FeatureContract(
        window_steps=CYCLE_STEPS,
        sample_rate_hz=SAMPLE_RATE_HZ,
        forecast_horizon=forecast_horizon,
        known_component_types=tuple(sorted({c.type for c in spec.components})),
    )


def encode_cycles(
    data: HydraulicData, normal_ranges: Mapping[str, tuple[float, float]], contract: FeatureContract
) -> list[GraphSample]:
    """Each cycle as one encoded window of the spec with ``normal_ranges``."""
    from worker.model import SpecGraph, encode_window

    graph = SpecGraph.build(hydraulic_spec(normal_ranges), contract)
    return [encode_window(graph, cycle.T, SAMPLE_RATE_HZ, contract) for cycle in data.readings]


def component_labels(data: HydraulicData) -> npt.NDArray[np.int64]:
    """Each cycle's target candidate per spec component (class index of its target).

    Shapes:
        returned: ``[N, C]`` int64, components in spec order.
    """
    index = component_of_target(hydraulic_spec({s.id: (0.0, 1.0) for s in SENSORS}))
    out = np.zeros((data.num_cycles, len(index)), dtype=np.int64)
    for name, column in index.items():
        out[:, column] = data.labels[name]
    return out


def train_gnn(
    samples: Sequence[GraphSample],
    labels: npt.NDArray[np.int64],
    contract: FeatureContract,
    config: HydraulicBenchConfig,
    *,
    seed: int,
    tick: Tick,
    stage: str,
) -> UniversalTemporalGNN:
    """Train a fresh model on the training cycles of one fold.

    Args:
        samples: Encoded training cycles.
        labels: Their candidate per component (:func:`component_labels`).
        contract: The contract they were encoded under.
        config: Epochs, batch size, optimiser and model settings.
        seed: Seed of initialisation, shuffling and dropout.
        tick: Told after every epoch.
        stage: Label for ``tick``.

    Returns:
        The trained model, in eval mode.

    Shapes:
        labels: ``[len(samples), C]``.
    """
    import torch

    from training.batches import ShuffledBatches
    from training.fit import FitConfig, TrainProgress, fit
    from worker.model import GraphBatch, UniversalTemporalGNN, collate
    from worker.model.losses import fault_log_prob

    horizon = contract.forecast_horizon

    def make(rows: npt.NDArray[np.int64]) -> tuple[GraphBatch, torch.Tensor]:
        batch = collate([samples[i] for i in rows])
        return batch, torch.from_numpy(labels[rows].reshape(-1))

    def loss(model: UniversalTemporalGNN, step: tuple[GraphBatch, torch.Tensor]) -> torch.Tensor:
        batch, target = step
        output = model(batch)
        value = -fault_log_prob(output, batch, target).mean()
        mask = batch.mask[:, -horizon:]
        squared = (output.forecast - batch.x[:, -horizon:]) ** 2 * mask
        forecast = config.forecast_weight * squared.sum() / mask.sum().clamp_min(1.0)
        total: torch.Tensor = value + forecast
        return total

    def report(update: TrainProgress) -> None:
        if update.epoch_end:
            tick(stage, update.epoch, update.epochs)

    rng = np.random.default_rng(seed)
    result = fit(
        lambda: UniversalTemporalGNN(config.model, contract),
        ShuffledBatches(len(samples), config.batch_size, make, rng),
        loss,
        FitConfig(
            epochs=config.epochs,
            learning_rate=config.learning_rate,
            weight_decay=config.weight_decay,
            seed=seed,
        ),
        progress=report,
    )
    return result.model


def predict_gnn(
    model: UniversalTemporalGNN, samples: Sequence[GraphSample], *, batch_size: int = 256
) -> npt.NDArray[np.int64]:
    """The most likely candidate of every component of every cycle.

    Returns:
        Candidate index (0 = normal, ``k`` = ``k``-th fault mode) per cycle and component.

    Shapes:
        returned: ``[len(samples), C]`` int64, components in spec order.
    """
    import torch

    from worker.model import collate

    rows: list[npt.NDArray[np.int64]] = []
    with torch.no_grad():
        for start in range(0, len(samples), batch_size):
            batch = collate(samples[start : start + batch_size])
            output = model(batch)
            width = int(batch.fault_rank.max()) + 1
            logits = torch.full((batch.num_components, width), -torch.inf)
            logits[:, 0] = output.normal_logit
            logits[batch.fault_component, batch.fault_rank] = output.fault_logit
            best = logits.argmax(dim=1).numpy().astype(np.int64)
            rows.append(best.reshape(batch.num_graphs, -1))
    return np.concatenate(rows)


def run_hydraulic_benchmark(
    data: HydraulicData, config: HydraulicBenchConfig, *, command: str, tick: Tick
) -> dict[str, Any]:
    """Both split schemes, GNN and baseline on the same folds; the result document.

    Args:
        data: The cycles (all of them for the published protocol).
        config: The run's settings.
        command: The command line, recorded in the document.
        tick: Told after every training epoch.

    Returns:
        The result document (:func:`training.benchmarks.report.result_document`), with a
        ``per_fold`` section besides the standard keys.
    """
    from training.benchmarks.report import result_document
    from training.fit import torch_threads

    groups = condition_runs(data.profile)
    contract = contract_for_rig(config.forecast_horizon)
    labels = component_labels(data)
    component_index = component_of_target(hydraulic_spec({s.id: (0.0, 1.0) for s in SENSORS}))
    results: dict[str, Any] = {}
    baselines: dict[str, Any] = {}
    per_fold: dict[str, Any] = {}
    fold_sizes: dict[str, list[int]] = {}
    with torch_threads(config.threads):
        for scheme_number, scheme in enumerate(config.schemes):
            if scheme == "grouped":
                fold = grouped_folds(groups, config.folds, config.seed)
            else:
                fold = random_folds(data.num_cycles, config.folds, config.seed)
            fold_sizes[scheme] = np.bincount(fold, minlength=config.folds).tolist()
            gnn_scores: list[dict[str, float]] = []
            tree_scores: list[dict[str, float]] = []
            seconds: list[float] = []
            for k in range(config.folds):
                train_rows = np.flatnonzero(fold != k)
                test_rows = np.flatnonzero(fold == k)
                train, test = data.subset(train_rows), data.subset(test_rows)
                ranges = fit_normal_ranges(train.readings)
                started = time.perf_counter()
                model = train_gnn(
                    encode_cycles(train, ranges, contract),
                    labels[train_rows],
                    contract,
                    config,
                    seed=config.gnn_seed * 1000 + scheme_number * 100 + k,
                    tick=tick,
                    stage=f"{scheme} fold {k + 1}/{config.folds}",
                )
                seconds.append(time.perf_counter() - started)
                predicted = predict_gnn(model, encode_cycles(test, ranges, contract))
                gnn_scores.append(
                    _scores(test, {t.name: predicted[:, component_index[t.name]] for t in TARGETS})
                )
                tree = baseline_predictions(
                    train, test, trees=config.baseline_trees, seed=config.seed
                )
                tree_scores.append(_scores(test, tree))
            results[f"gnn_{scheme}"] = {
                **_summary(gnn_scores),
                "training_s": sum(seconds),
                "training_s_per_fold": sum(seconds) / len(seconds),
            }
            baselines[f"{BASELINE}_{scheme}"] = _summary(tree_scores)
            per_fold[scheme] = {
                "gnn": gnn_scores,
                BASELINE: tree_scores,
                "gnn_training_s": seconds,
            }

    ratios = {
        f"{target.name}_accuracy_gnn_minus_baseline_{scheme}": results[f"gnn_{scheme}"][
            f"{target.name}_accuracy"
        ]
        - baselines[f"{BASELINE}_{scheme}"][f"{target.name}_accuracy"]
        for scheme in config.schemes
        for target in TARGETS
    }
    run_config = {
        **config.to_dict(),
        "contract": contract.to_dict(),
        "data_dir": str(data.source),
        "cycles": data.num_cycles,
        "condition_runs": int(groups.max()) + 1,
        "condition_run_median_cycles": float(np.median(np.bincount(groups))),
        "fold_sizes": fold_sizes,
        "normal_ranges": "fitted per fold on training cycles (1st-99th percentile)",
        "baseline_features": "mean, std, min, max, first, last, slope of each of the 8 sensors",
        "targets": {t.name: list(t.values) for t in TARGETS},
    }
    document = result_document(
        "hydraulic",
        command=command,
        config=run_config,
        results=results,
        ratios=ratios,
        baselines=baselines,
        published=PUBLISHED,
    )
    document["per_fold"] = per_fold
    return document


def _scores(
    test: HydraulicData, predicted: Mapping[str, npt.NDArray[np.int64]]
) -> dict[str, float]:
    scores: dict[str, float] = {}
    for target in TARGETS:
        truth = test.labels[target.name]
        scores[f"{target.name}_accuracy"] = accuracy(truth, predicted[target.name])
        scores[f"{target.name}_macro_f1"] = macro_f1(truth, predicted[target.name])
    return scores


def _summary(scores: Sequence[Mapping[str, float]]) -> dict[str, float]:
    summary: dict[str, float] = {}
    for name in scores[0]:
        values = np.array([fold[name] for fold in scores])
        summary[name] = float(values.mean())
        summary[f"{name}_std"] = float(values.std())
    return summary
