"""Window-level metrics that score the GNN and the same-run baseline
(:mod:`training.baseline`) alike, from :class:`WindowPredictions`: what each model says about
each window (its fault score, each component's label and remaining life) beside the truth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from machines import RUL_CAP_HOURS
from training.data.demo import LabelledWindow, collate_labelled
from training.evaluate import UNKNOWN, predicted_codes, qualified
from training.metrics import auroc, macro_f1
from worker.model import UniversalTemporalGNN

_FLOAT = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class WindowPredictions:
    """What a model (the GNN or the baseline) says about each window, and the truth.

    Attributes:
        run: Run name of each window.
        system: Machine of each window.
        faulty: Whether any component of the window's machine has an active fault.
        known: Whether that is known (a faulty window, or one whose every label is known).
        fault_score: The model's probability that some component is faulty.
        anomaly_score: The GNN's largest sensor anomaly score in the window (``nan`` for a
            model without one).
        component_window: Window index of each component row.
        component_system: Machine of each component row.
        component_id: Component id of each component row.
        label_true, label_pred: Fault label of each component row (``normal`` or a fault id).
        rul_true, rul_pred: Remaining useful life of each component row, hours (``nan``:
            unknown, or a model that does not estimate it).

    Shapes:
        window rows: ``[W]``; component rows: ``[M_c]``.
    """

    run: npt.NDArray[np.str_]
    system: npt.NDArray[np.str_]
    faulty: npt.NDArray[np.bool_]
    known: npt.NDArray[np.bool_]
    fault_score: _FLOAT
    anomaly_score: _FLOAT
    component_window: npt.NDArray[np.int64]
    component_system: npt.NDArray[np.str_]
    component_id: npt.NDArray[np.str_]
    label_true: npt.NDArray[np.str_]
    label_pred: npt.NDArray[np.str_]
    rul_true: _FLOAT
    rul_pred: _FLOAT

    def subset(self, keep: npt.NDArray[np.bool_]) -> WindowPredictions:
        """The windows where ``keep`` (shape ``[W]``) holds, with their component rows."""
        rows = keep[self.component_window]
        renumber = np.cumsum(keep) - 1
        return WindowPredictions(
            run=self.run[keep],
            system=self.system[keep],
            faulty=self.faulty[keep],
            known=self.known[keep],
            fault_score=self.fault_score[keep],
            anomaly_score=self.anomaly_score[keep],
            component_window=renumber[self.component_window[rows]],
            component_system=self.component_system[rows],
            component_id=self.component_id[rows],
            label_true=self.label_true[rows],
            label_pred=self.label_pred[rows],
            rul_true=self.rul_true[rows],
            rul_pred=self.rul_pred[rows],
        )


def gnn_window_predictions(
    model: UniversalTemporalGNN,
    runs: Sequence[tuple[str, Sequence[LabelledWindow]]],
    *,
    batch_size: int = 64,
) -> WindowPredictions:
    """Run ``model`` over the windows of named runs and keep its per-window results.

    The fault score of a window is the largest ``1 - normal_prob`` of its components; the
    anomaly score the largest ``sensor_anomaly`` of its sensors.

    Raises:
        ValueError: No windows.
    """
    windows = [window for _, chunk in runs for window in chunk]
    if not windows:
        raise ValueError("no windows to evaluate")
    names = np.asarray([name for name, chunk in runs for _ in chunk])
    model.eval()
    device = next(model.parameters()).device
    fault: list[_FLOAT] = []
    anomaly: list[_FLOAT] = []
    rul: list[_FLOAT] = []
    labels: list[npt.NDArray[np.str_]] = []
    for start in range(0, len(windows), batch_size):
        batch = collate_labelled(windows[start : start + batch_size]).batch
        with torch.inference_mode():
            output = model(batch.to(device)).to("cpu")
        component_start = np.cumsum((0, *batch.component_counts[:-1]))
        node_start = np.cumsum((0, *batch.node_counts[:-1]))
        abnormal = 1.0 - output.normal_prob.numpy().astype(np.float64)
        fault.append(np.maximum.reduceat(abnormal, component_start))
        scores = output.sensor_anomaly.numpy().astype(np.float64)
        anomaly.append(np.maximum.reduceat(scores, node_start))
        rul.append(output.rul_hours.numpy().astype(np.float64))
        codes = predicted_codes(output, batch)
        offset = 0
        for graph in batch.graphs:
            vocabulary = np.asarray(("normal", *graph.fault_ids))
            labels.append(vocabulary[codes[offset : offset + graph.num_components]])
            offset += graph.num_components
    return _assemble(
        names,
        windows,
        np.concatenate(fault),
        np.concatenate(anomaly),
        labels,
        rul_pred=np.concatenate(rul),
    )


def _assemble(
    names: npt.NDArray[np.str_],
    windows: Sequence[LabelledWindow],
    fault_score: _FLOAT,
    anomaly_score: _FLOAT,
    predicted: Sequence[npt.NDArray[np.str_]],
    *,
    rul_pred: _FLOAT,
) -> WindowPredictions:
    # A recorded run's unknown fault code (-1) lands on the trailing "unknown".
    truth = [
        np.asarray(("normal", *w.sample.graph.fault_ids, UNKNOWN))[w.fault_code.astype(np.int64)]
        for w in windows
    ]
    counts = [len(w.fault_code) for w in windows]
    return WindowPredictions(
        run=names,
        system=np.asarray([w.system for w in windows]),
        faulty=np.asarray([bool((w.fault_code > 0).any()) for w in windows]),
        known=np.asarray([bool((w.fault_code > 0).any() or w.healthy) for w in windows]),
        fault_score=fault_score,
        anomaly_score=anomaly_score,
        component_window=np.repeat(np.arange(len(windows)), counts),
        component_system=np.repeat(np.asarray([w.system for w in windows]), counts),
        component_id=np.concatenate(
            [np.asarray(w.sample.graph.component_ids, dtype=str) for w in windows]
        ),
        label_true=np.concatenate(truth),
        label_pred=np.concatenate(predicted),
        rul_true=np.concatenate([w.rul_hours for w in windows]).astype(np.float64),
        rul_pred=rul_pred,
    )


def window_predictions_of(
    names: npt.NDArray[np.str_],
    windows: Sequence[LabelledWindow],
    fault_score: _FLOAT,
    predicted: Sequence[npt.NDArray[np.str_]],
    rul_pred: _FLOAT | None = None,
) -> WindowPredictions:
    """Window predictions of a model without anomaly score (the baseline).

    Shapes:
        names, fault_score: ``[W]``; predicted: one ``[C]`` label array per window;
        rul_pred: ``[M_c]`` (None: no estimate).
    """
    rows = sum(len(w.fault_code) for w in windows)
    rul = np.full(rows, np.nan) if rul_pred is None else rul_pred
    return _assemble(
        names, windows, fault_score, np.full(len(windows), np.nan), predicted, rul_pred=rul
    )


def window_metrics(p: WindowPredictions) -> dict[str, float | int]:
    """Window-level metrics, the same for every model:

    - ``window_anomaly_auroc``: the fault score against "some component is faulty";
    - ``fault_macro_f1``: macro-F1 of component fault labels (pooled as ``system:fault``),
      ``nan`` when no component is faulty (it would only count ``normal``);
    - ``false_alarm_rate`` (healthy windows with a predicted fault), ``detection_rate``
      (faulty windows with a predicted fault);
    - ``run_accuracy`` over the ``runs_scored`` runs with one condition throughout: the
      run's most frequent predicted labelling against its labelling;
    - ``fault_score_std``, ``anomaly_score_std``: how much the outputs vary across windows;
    - ``rul_rmse_hours``: root mean squared error of the remaining useful life over the
      component rows with a failure in sight (known RUL below the cap), both sides clipped to
      ``[0, RUL_CAP_HOURS]``; ``nan`` without such rows or without estimates.
    """
    claims = (p.label_pred != "normal") & (p.label_pred != UNKNOWN)
    predicted_faulty = np.zeros(p.run.size, dtype=bool)
    np.logical_or.at(predicted_faulty, p.component_window, claims)
    healthy = p.known & ~p.faulty
    rows = p.label_true != UNKNOWN  # unknown labels are left out of every metric
    any_fault = bool((p.label_true[rows] != "normal").any())
    f1 = macro_f1(
        qualified(p.component_system[rows], p.label_true[rows]),
        qualified(p.component_system[rows], p.label_pred[rows]),
    )
    scored, correct = _run_accuracy(p)
    return {
        "windows": int(p.run.size),
        "faulty_windows": int(p.faulty.sum()),
        "window_anomaly_auroc": auroc(p.fault_score[p.known], p.faulty[p.known]),
        "fault_macro_f1": f1 if any_fault else math.nan,
        "false_alarm_rate": float(predicted_faulty[healthy].mean()) if healthy.any() else math.nan,
        "detection_rate": float(predicted_faulty[p.faulty].mean()) if p.faulty.any() else math.nan,
        "run_accuracy": correct / scored if scored else math.nan,
        "runs_scored": scored,
        "fault_score_std": float(np.std(p.fault_score)) if p.run.size else math.nan,
        "anomaly_score_std": float(np.nanstd(p.anomaly_score))
        if np.isfinite(p.anomaly_score).any()
        else math.nan,
        "rul_rmse_hours": _rul_rmse(p.rul_true, p.rul_pred),
    }


def _rul_rmse(truth: _FLOAT, estimate: _FLOAT) -> float:
    in_sight = np.isfinite(truth) & (truth < RUL_CAP_HOURS) & np.isfinite(estimate)
    if not in_sight.any():
        return math.nan
    error = np.clip(estimate[in_sight], 0.0, RUL_CAP_HOURS) - np.clip(
        truth[in_sight], 0.0, RUL_CAP_HOURS
    )
    return float(np.sqrt(np.mean(error**2)))


def component_accuracy(p: WindowPredictions) -> dict[str, float]:
    """Share of windows whose fault label is right, per component with a known label
    (``machine:component`` when several machines are evaluated), in first-seen order."""
    names_of = (
        p.component_id
        if np.unique(p.component_system).size <= 1
        else qualified(p.component_system, p.component_id)
    )
    known = p.label_true != UNKNOWN
    right = p.label_true == p.label_pred
    names = list(dict.fromkeys(names_of[known].tolist()))
    return {name: float(right[known & (names_of == name)].mean()) for name in names}


def _run_accuracy(p: WindowPredictions) -> tuple[int, int]:
    """Runs with one condition throughout, and how many of them are labelled right by the
    most frequent predicted labelling of their windows."""
    true_rows = _window_labellings(p.label_true, p.component_window, p.run.size)
    pred_rows = _window_labellings(p.label_pred, p.component_window, p.run.size)
    scored = correct = 0
    for name in np.unique(p.run):
        here = np.flatnonzero(p.run == name)
        truths = {true_rows[i] for i in here}
        if len(truths) != 1 or not p.known[here].all() or UNKNOWN in next(iter(truths)):
            continue
        values, counts = np.unique([pred_rows[i] for i in here], return_counts=True)
        scored += 1
        correct += int(values[np.argmax(counts)] == truths.pop())
    return scored, correct


def _window_labellings(
    labels: npt.NDArray[np.str_], window: npt.NDArray[np.int64], windows: int
) -> list[str]:
    parts: list[list[str]] = [[] for _ in range(windows)]
    for index, label in zip(window.tolist(), labels.tolist(), strict=True):
        parts[index].append(label)
    return ["|".join(part) for part in parts]


def undefined_reasons(p: WindowPredictions, where: str = "validation") -> dict[str, str]:
    """Why each undefined window metric is undefined, in words (``where`` names the data);
    remaining life, when the data has no remaining-life labels, is not applicable and gets
    no reason."""
    faulty, healthy = int(p.faulty.sum()), int((p.known & ~p.faulty).sum())
    reasons: dict[str, str] = {}
    if not faulty:
        reasons["window_anomaly_auroc"] = f"{where} has no faulty window"
        reasons["detection_rate"] = f"{where} has no faulty window"
        reasons["fault_macro_f1"] = (
            f"{where} has no faulty component (F1 would only score 'normal'); see false alarms"
        )
    if not healthy:
        reasons["window_anomaly_auroc"] = f"{where} has no healthy window"
        reasons["false_alarm_rate"] = f"{where} has no healthy window"
    if _run_accuracy(p)[0] == 0:
        reasons["run_accuracy"] = f"no run of {where} keeps one condition throughout"
    known_rul = np.isfinite(p.rul_true)
    # Data with no remaining-life labels at all has no remaining-life metric to explain.
    if known_rul.any() and not (known_rul & (p.rul_true < RUL_CAP_HOURS)).any():
        reasons["rul_rmse_hours"] = (
            f"{where} has no component with a failure in sight (a known remaining life below "
            f"{RUL_CAP_HOURS:g} h)"
        )
    return reasons
