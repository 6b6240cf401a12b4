"""C-MAPSS FD001 remaining-useful-life benchmark: UniversalTemporalGNN against a tree ensemble.

Both read the same windows of the same engines. With a test file and its RUL file the
standard protocol applies: train on every training engine, predict at the last cycle of
each test engine, score RMSE and the PHM08 score. Without them, a seeded unit-wise split of
the training file stands in: the validation engines are cut after a random cycle, as the
test set was built, and scored at the cut; the RMSE over every window of the validation
engines is reported beside it. Everything learned (weights, normal ranges, the baseline)
comes from training engines only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from training.benchmarks.cmapss.dataset import (
    RUL_CAP,
    CmapssRecording,
    encode_windows,
    engine_spec,
    read_cmapss,
    read_rul,
    rul_labels,
    split_units,
)
from training.benchmarks.cmapss.models import fit_baseline, predict, train_gnn, window_features
from training.benchmarks.cmapss.report import plot_rul
from training.benchmarks.report import result_document
from worker.model import FeatureContract, ModelConfig
from worker.model.spec_graph import SpecGraph

Tick = Callable[[str, int, int], None]
"""Progress report: ``(stage, done, total)``."""

_HAGCN_RMSE: Final = 11.93

PUBLISHED: Final[dict[str, dict[str, float | str]]] = {
    "lstm": {"test_rmse": 16.14, "source": "Zheng et al. 2017, LSTM, FD001 test set"},
    "cnn": {"test_rmse": 12.61, "source": "Babu et al. 2016, deep CNN, FD001 test set"},
    "hagcn": {
        "test_rmse": _HAGCN_RMSE,
        "source": "Li et al. 2021, HAGCN graph model, FD001 test set",
    },
}
"""Published FD001 test RMSE (../shared/docs/BENCHMARKS.md)."""

_BASELINE: Final = "hist_gradient_boosting"


@dataclass(frozen=True)
class CmapssBenchConfig:
    """Everything that changes the result.

    Attributes:
        seed: Seed of the split, the cuts, initialisation, window sampling and the baseline.
        window: Cycles the model reads per prediction.
        rul_cap: Cap of the RUL labels (and of the truth in ``*_rmse``).
        validation_units: Training engines held out when no test file is given.
        max_cut_rul: Largest true RUL at a validation engine's cut (:func:`validation_cuts`).
        epochs: Passes of ``windows_per_epoch`` sampled training windows (fixed count).
        windows_per_epoch: Training windows drawn without replacement per epoch.
        batch_size: Windows per optimiser step.
        learning_rate: AdamW learning rate, cosine-decayed to a tenth.
        weight_decay: AdamW weight decay.
        grad_clip: Largest gradient norm.
        hidden: Model width.
        layers: GATv2 layers.
        heads: Attention heads.
        dropout: Dropout while training.
        threads: Torch intra-op threads, and OpenMP threads of the baseline.
        baseline_iterations: Boosting iterations of the baseline.
    """

    seed: int = 0
    window: int = 30
    rul_cap: int = RUL_CAP
    validation_units: int = 20
    max_cut_rul: int = 150
    epochs: int = 50
    windows_per_epoch: int = 4096
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    hidden: int = 32
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    threads: int = 1
    baseline_iterations: int = 200

    def model_config(self) -> ModelConfig:
        """The model's hyper-parameters; the RUL head's unit is the cap."""
        return ModelConfig(
            hidden=self.hidden,
            layers=self.layers,
            heads=self.heads,
            dropout=self.dropout,
            rul_unit_hours=float(self.rul_cap),
            window_stats=False,  # the published figures' architecture (docs/benchmarks.md)
            identity_buckets=0,
            component_messages=False,
        )

    def contract(self) -> FeatureContract:
        """``window`` seen cycles plus one unobserved forecast step, one step per cycle."""
        return FeatureContract(window_steps=self.window + 1, forecast_horizon=1)


@dataclass(frozen=True, eq=False)
class EvaluationSet:
    """Engines scored at one cycle each, with the truth on every row up to their end.

    Attributes:
        recording: The file the engines come from.
        units: Engine numbers.
        scored_rows: Row of the cycle each engine is scored at (its cut or last cycle).
        truth: True (uncapped) RUL at each scored row.
        rows: Every row of the engines (all windows).
        row_truth: True (uncapped) RUL at each of ``rows``.

    Shapes:
        scored_rows, truth: ``[U]``; rows, row_truth: ``[W]``.
    """

    recording: CmapssRecording
    units: tuple[int, ...]
    scored_rows: npt.NDArray[np.int64]
    truth: npt.NDArray[np.float64]
    rows: npt.NDArray[np.int64]
    row_truth: npt.NDArray[np.float64]

    @property
    def scored_index(self) -> npt.NDArray[np.int64]:
        """Position of each scored row in :attr:`rows`.

        Shapes:
            returned: ``[U]``.
        """
        return np.searchsorted(self.rows, self.scored_rows)


def rmse(predicted: npt.ArrayLike, true: npt.ArrayLike) -> float:
    """Root mean squared error (``sklearn.metrics.root_mean_squared_error``).

    Shapes:
        predicted, true: ``[U]``.
    """
    from sklearn.metrics import root_mean_squared_error

    return float(root_mean_squared_error(true, predicted))


def phm08_score(predicted: npt.ArrayLike, true: npt.ArrayLike) -> float:
    """PHM08 score: sum of ``exp(-d/13) - 1`` for early and ``exp(d/10) - 1`` for late
    predictions, ``d = predicted - true`` (late ones cost more).

    Shapes:
        predicted, true: ``[U]``.
    """
    d = np.asarray(predicted, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


def validation_cuts(
    recording: CmapssRecording,
    units: Sequence[int],
    *,
    window: int,
    max_rul: int,
    seed: int,
) -> npt.NDArray[np.int64]:
    """The row each validation engine is cut after, as the test set was built.

    Test engines stop some cycles before failure, with at least a window of cycles and a
    true RUL below about 150. So an engine of ``L`` cycles gets a true RUL ``r`` drawn
    uniformly from ``1 .. max(1, min(max_rul, L - window))`` by
    ``numpy.random.default_rng((seed, 1))`` in ``units`` order, and keeps its first
    ``L - r`` cycles.

    Shapes:
        returned: ``[len(units)]``.
    """
    rng = np.random.default_rng((seed, 1))
    cuts = []
    for unit in units:
        rows = recording.rows_of(unit)
        longest = max(1, min(max_rul, rows.size - window))
        remaining = min(int(rng.integers(1, longest + 1)), rows.size - 1)
        cuts.append(rows[rows.size - 1 - remaining])
    return np.array(cuts, dtype=np.int64)


def evaluation_set(
    recording: CmapssRecording,
    units: Sequence[int],
    scored_rows: npt.NDArray[np.int64],
    final_rul: npt.NDArray[np.int64],
) -> EvaluationSet:
    """Engines scored at ``scored_rows``; ``final_rul`` is each one's RUL at its last row."""
    rows = np.flatnonzero(np.isin(recording.unit, np.asarray(units)))
    last = {u: int(recording.cycle[recording.rows_of(u)[-1]]) for u in units}
    final = dict(zip(units, final_rul.tolist(), strict=True))

    def truth_at(row_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        return np.array(
            [
                final[u] + last[u] - c
                for u, c in zip(recording.unit[row_ids], recording.cycle[row_ids], strict=True)
            ],
            dtype=np.float64,
        )

    return EvaluationSet(
        recording, tuple(units), scored_rows, truth_at(scored_rows), rows, truth_at(rows)
    )


def run_cmapss_benchmark(
    config: CmapssBenchConfig,
    *,
    train_path: Path,
    test_path: Path | None = None,
    rul_path: Path | None = None,
    command: str,
    plot_path: Path | None = None,
    tick: Tick | None = None,
) -> dict[str, Any]:
    """Train the GNN and the baseline, score both, and return the result document.

    Raises:
        ValueError: Only one of ``test_path`` and ``rul_path`` given, or a bad file (the
            message names it).
    """
    if (test_path is None) != (rul_path is None):
        raise ValueError("--test and --rul go together: give both files or neither")
    report = tick or (lambda stage, done, total: None)
    train = read_cmapss(train_path)
    held: tuple[int, ...] = ()
    if test_path is not None and rul_path is not None:
        test = read_cmapss(test_path)
        train_units = train.unit_ids
        evaluation = evaluation_set(
            test, test.unit_ids, test.last_rows(), read_rul(rul_path, units=len(test.unit_ids))
        )
        prefix = "test"
    else:
        train_units, held = split_units(
            train.unit_ids, validation=config.validation_units, seed=config.seed
        )
        cuts = validation_cuts(
            train, held, window=config.window, max_rul=config.max_cut_rul, seed=config.seed
        )
        evaluation = evaluation_set(train, held, cuts, np.zeros(len(held), dtype=np.int64))
        prefix = "validation"

    contract = config.contract()
    spec = engine_spec(train, train_units, cap=config.rul_cap)
    graph = SpecGraph.build(spec, contract)
    train_rows = np.flatnonzero(np.isin(train.unit, np.asarray(train_units)))
    x, mask = encode_windows(graph, contract, train, train_rows)
    labels = rul_labels(train, cap=config.rul_cap)[train_rows]
    eval_x, eval_mask = encode_windows(graph, contract, evaluation.recording, evaluation.rows)

    model, training_s, losses = train_gnn(
        config, graph, contract=contract, x=x, mask=mask, labels=labels, report=report
    )
    predicted = predict(model, graph, eval_x, eval_mask, threads=config.threads)

    # threadpoolctl ships without type information; it comes with scikit-learn.
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    # The same threads as the GNN: fair timing, and no OpenMP spinning on a busy machine.
    with threadpool_limits(limits=config.threads):
        started = time.perf_counter()
        baseline = fit_baseline(config, window_features(x, mask, contract), labels)
        baseline_s = time.perf_counter() - started
        baseline_predicted = np.clip(
            baseline.predict(window_features(eval_x, eval_mask, contract)), 0.0, config.rul_cap
        )

    cap = config.rul_cap
    cuttable = _cuttable(evaluation, window=config.window, max_rul=config.max_cut_rul)
    results = {"gnn": _scores(prefix, predicted, evaluation, cuttable, cap=cap, seconds=training_s)}
    baselines = {
        _BASELINE: _scores(
            prefix, baseline_predicted, evaluation, cuttable, cap=cap, seconds=baseline_s
        )
    }
    if plot_path is not None:
        plot_rul(plot_path, evaluation, predicted, baseline_predicted, cap=cap)
    gnn, base = results["gnn"], baselines[_BASELINE]
    document_config: dict[str, Any] = {
        **asdict(config),
        "evaluation": prefix,
        "train_file": str(train_path),
        "test_file": None if test_path is None else str(test_path),
        "rul_file": None if rul_path is None else str(rul_path),
        "train_units": len(train_units),
        "validation_units_list": list(held),
        "train_windows": int(train_rows.size),
        "evaluated_units": len(evaluation.units),
        "evaluated_windows": int(evaluation.rows.size),
        "truncation": (
            "each validation engine of L cycles gets a true RUL r uniform in "
            "1..max(1, min(max_cut_rul, L - window)) from numpy default_rng((seed, 1)) in "
            "unit order and keeps its first L - r cycles; scored at its last kept cycle"
            if prefix == "validation"
            else "test engines scored at their last cycle; truth from the RUL file"
        ),
        "truth_cap": "*_rmse and *_score use the truth capped at rul_cap; *_uncapped do not",
        "readout": "machine RUL = mean of rul_hours over the 9 components; each component "
        "trained on the engine's capped RUL (MSE in units of rul_cap); rul_hours here are cycles",
        "normal_range_rule": "0.5-99.5 percentile of training engines' rows with uncapped RUL > "
        "rul_cap; constant sensors kept (degenerate range, read as 0); settings not used",
        "model": config.model_config().to_dict(),
        "contract": {
            "window_steps": contract.window_steps,
            "forecast_horizon": 1,
            "sample_rate_hz": 1.0,
        },
        "parameters": model.num_parameters(),
        "epoch_losses": [round(loss, 6) for loss in losses],
        "normal_ranges": {s.id: [round(v, 6) for v in s.normal] for s in spec.sensors},
        "baseline": "sklearn HistGradientBoostingRegressor on last value, mean, std and "
        "least-squares slope per sensor of the same windows",
    }
    return result_document(
        "cmapss",
        command=command,
        config=document_config,
        results=results,
        baselines=baselines,
        published=PUBLISHED,
        ratios={
            "rmse_vs_baseline": gnn[f"{prefix}_rmse"] / base[f"{prefix}_rmse"],
            "rmse_all_cuts_vs_baseline": (
                gnn[f"{prefix}_rmse_all_cuts"] / base[f"{prefix}_rmse_all_cuts"]
            ),
            # Against a published test-set figure: comparable only when prefix is "test".
            f"{prefix}_rmse_vs_hagcn_test": gnn[f"{prefix}_rmse"] / _HAGCN_RMSE,
        },
    )


def _cuttable(evaluation: EvaluationSet, *, window: int, max_rul: int) -> npt.NDArray[np.bool_]:
    """Rows where :func:`validation_cuts` may cut: at least ``window`` cycles seen and a true
    RUL in ``1 .. max_rul``.

    Shapes:
        returned: ``[W]`` over ``evaluation.rows``.
    """
    truth = evaluation.row_truth
    cycle = evaluation.recording.cycle[evaluation.rows]
    return (cycle >= window) & (truth >= 1) & (truth <= max_rul)


def _scores(
    prefix: str,
    predicted: npt.NDArray[np.float64],
    evaluation: EvaluationSet,
    cuttable: npt.NDArray[np.bool_],
    *,
    cap: int,
    seconds: float,
) -> dict[str, float]:
    """RMSE and PHM08 score at the scored cycles; RMSE over every possible cut and over
    every window.

    Shapes:
        predicted: ``[W]`` over ``evaluation.rows``; cuttable: ``[W]``.
    """
    at_cut = predicted[evaluation.scored_index]
    capped = np.minimum(evaluation.truth, cap)
    row_truth = np.minimum(evaluation.row_truth, cap)
    return {
        f"{prefix}_rmse": rmse(at_cut, capped),
        f"{prefix}_score": phm08_score(at_cut, capped),
        f"{prefix}_rmse_uncapped": rmse(at_cut, evaluation.truth),
        f"{prefix}_score_uncapped": phm08_score(at_cut, evaluation.truth),
        f"{prefix}_rmse_all_cuts": rmse(predicted[cuttable], row_truth[cuttable]),
        f"{prefix}_rmse_all_windows": rmse(predicted, row_truth),
        "training_s": round(seconds, 2),
    }
