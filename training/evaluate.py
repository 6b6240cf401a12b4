"""Evaluate a model on labelled windows: per-machine and overall quality metrics.

Metrics (each per machine and pooled over machines):

- ``fault_macro_f1``: macro-F1 of each component's most probable candidate ("normal" or one
  of its fault modes) against the active fault, over classes in truth or prediction;
  undefined (``nan``) without a faulty component, where it would only score "normal".
- ``health_mae`` over all components, ``health_mae_faulty`` over components with an active
  fault.
- ``rul_mae_hours``: remaining useful life error in hours over components with an active
  fault, both sides capped at :data:`machines.RUL_CAP_HOURS`;
  ``rul_mae_hours_developed`` over those whose fault is developed (health <= 0.6).
- ``anomaly_auroc``: sensor anomaly score against "an active fault affects this sensor";
  ``anomaly_auroc_developed`` the same with only developed faults (effect >= 0.5, health
  <= 0.6) as positives; ``anomaly_auroc_range_baseline`` is ``anomaly_auroc`` for a
  model-free score (the largest out-of-normal-range excursion in the window) for context.

Window-level metrics (:func:`window_metrics`) score the GNN and the same-run baseline
(:mod:`training.baseline`) alike, from :class:`WindowPredictions`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from machines import FAILURE_HEALTH, RUL_CAP_HOURS
from training.data.demo import LabelledWindow, collate_labelled
from training.metrics import auroc, macro_f1, mean_absolute_error, rul_mae
from worker.model import GraphBatch, ModelOutput, UniversalTemporalGNN

_FLOAT = npt.NDArray[np.float64]
_SENSOR_FIELDS = frozenset(
    {"sensor_system", "anomaly_score", "anomaly_label", "anomaly_effect", "range_score"}
)
UNKNOWN = "unknown"
"""Fault label of a component whose fault is not known (code -1 in a recorded run)."""
DEVELOPED_EFFECT = 0.5
"""Fault effect from which an anomaly counts as developed (health 0.6 and below)."""
DEVELOPED_HEALTH = 1.0 - DEVELOPED_EFFECT * (1.0 - FAILURE_HEALTH)
"""Health at and below which a component's fault counts as developed."""


@dataclass(frozen=True, eq=False)
class Predictions:
    """Model outputs and labels of many windows, flattened per component and per sensor.

    Attributes:
        component_system: Machine of each component row.
        health_true, health_pred: Component health.
        label_true, label_pred: Fault label (``normal`` or a fault id).
        rul_true, rul_pred: Remaining useful life, hours.
        sensor_system: Machine of each sensor row.
        anomaly_score: The model's sensor anomaly score.
        anomaly_label: Whether an active fault affects the sensor.
        anomaly_effect: Effect of the active faults affecting the sensor (0 healthy, 1 failed).
        range_score: Largest excursion beyond the normal range in the window (baseline).

    Shapes:
        component rows: ``[M_c]``; sensor rows: ``[M_s]``.
    """

    component_system: npt.NDArray[np.str_]
    health_true: _FLOAT
    health_pred: _FLOAT
    label_true: npt.NDArray[np.str_]
    label_pred: npt.NDArray[np.str_]
    rul_true: _FLOAT
    rul_pred: _FLOAT
    sensor_system: npt.NDArray[np.str_]
    anomaly_score: _FLOAT
    anomaly_label: npt.NDArray[np.bool_]
    anomaly_effect: _FLOAT
    range_score: _FLOAT


def predicted_codes(output: ModelOutput, batch: GraphBatch) -> npt.NDArray[np.int64]:
    """Each component's most probable candidate as an index into its machine's
    ``("normal", *fault_ids)``.

    Shapes:
        returned: ``[C]``.
    """
    best = output.normal_prob.detach().cpu().numpy().astype(np.float64)
    codes = np.zeros(best.shape[0], dtype=np.int64)
    fault_prob = output.fault_prob.detach().cpu().numpy()
    component = batch.fault_component.cpu().numpy()
    counts = np.asarray(batch.fault_counts, dtype=np.int64)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    for fault in range(fault_prob.shape[0]):
        if fault_prob[fault] > best[component[fault]]:
            best[component[fault]] = fault_prob[fault]
            codes[component[fault]] = local[fault] + 1
    return codes


def predict(
    model: UniversalTemporalGNN, windows: Sequence[LabelledWindow], *, batch_size: int = 64
) -> Predictions:
    """Run ``model`` (in eval mode, without gradients) over ``windows``.

    Raises:
        ValueError: No windows.
    """
    if not windows:
        raise ValueError("no windows to evaluate")
    model.eval()
    device = next(model.parameters()).device
    rows: dict[str, list[npt.NDArray[Any]]] = {name: [] for name in _field_names()}
    for start in range(0, len(windows), batch_size):
        chunk = windows[start : start + batch_size]
        labelled = collate_labelled(chunk)
        batch = labelled.batch
        with torch.inference_mode():
            output = model(batch.to(device)).to("cpu")
        # A recorded run's unknown fault code (-1) lands on the trailing UNKNOWN.
        vocabularies = [np.asarray(("normal", *g.fault_ids, UNKNOWN)) for g in batch.graphs]
        codes_pred = predicted_codes(output, batch)
        codes_true = labelled.fault_code.numpy()
        offset = 0
        for graph, vocabulary, window in zip(batch.graphs, vocabularies, chunk, strict=True):
            span = slice(offset, offset + graph.num_components)
            rows["label_true"].append(vocabulary[codes_true[span]])
            rows["label_pred"].append(vocabulary[codes_pred[span]])
            rows["component_system"].append(np.full(graph.num_components, window.system))
            rows["sensor_system"].append(np.full(graph.num_nodes, window.system))
            offset += graph.num_components
        rows["health_true"].append(labelled.targets.component_health.numpy())
        rows["health_pred"].append(output.component_health.numpy())
        rows["rul_true"].append(labelled.targets.rul_hours.numpy())
        rows["rul_pred"].append(output.rul_hours.numpy())
        rows["anomaly_score"].append(output.sensor_anomaly.numpy())
        rows["anomaly_label"].append(labelled.sensor_label.numpy())
        rows["anomaly_effect"].append(labelled.sensor_effect.numpy().astype(np.float64))
        rows["range_score"].append(_range_score(batch))
    arrays = {name: np.concatenate(parts) for name, parts in rows.items()}
    for name in ("health_true", "health_pred", "rul_true", "rul_pred", "anomaly_score"):
        arrays[name] = arrays[name].astype(np.float64)
    return Predictions(**arrays)


def _range_score(batch: GraphBatch) -> _FLOAT:
    """Largest ``|x| - 1`` over observed steps: how far outside its normal range a sensor went.

    Shapes:
        returned: ``[N]``.
    """
    excess = (batch.x.abs() - 1.0).clamp_min(0.0) * batch.mask
    return excess.amax(dim=1).numpy().astype(np.float64)


def compute_metrics(predictions: Predictions) -> dict[str, float | int]:
    """Every metric of the module docstring for one set of predictions."""
    p = predictions
    # Unknown labels (recorded runs: fault UNKNOWN, NaN health or life) are left out.
    known = p.label_true != UNKNOWN
    faulty = known & (p.label_true != "normal")
    health_known, rul_known = np.isfinite(p.health_true), np.isfinite(p.rul_true)
    # Developed anomalies against sensors no fault affects; early, faint ones left out.
    developed = ~p.anomaly_label | (p.anomaly_effect >= DEVELOPED_EFFECT)
    developed_fault = faulty & health_known & (p.health_true <= DEVELOPED_HEALTH)
    f1 = macro_f1(p.label_true[known], p.label_pred[known])
    return {
        "components": int(p.label_true.size),
        "faulty_components": int(faulty.sum()),
        # Without a faulty component the F1 would only score "normal": undefined, not 1.0.
        "fault_macro_f1": f1 if faulty.any() else math.nan,
        "health_mae": mean_absolute_error(p.health_true, p.health_pred, health_known),
        "health_mae_faulty": mean_absolute_error(
            p.health_true, p.health_pred, faulty & health_known
        ),
        "rul_mae_hours": rul_mae(
            p.rul_true, p.rul_pred, cap_hours=RUL_CAP_HOURS, where=faulty & rul_known
        ),
        "rul_mae_hours_developed": rul_mae(
            p.rul_true, p.rul_pred, cap_hours=RUL_CAP_HOURS, where=developed_fault & rul_known
        ),
        "anomaly_auroc": auroc(p.anomaly_score, p.anomaly_label),
        "anomaly_auroc_range_baseline": auroc(p.range_score, p.anomaly_label),
        "anomaly_auroc_developed": auroc(p.anomaly_score[developed], p.anomaly_label[developed]),
        "anomaly_score_healthy_median": _median(p.anomaly_score[~p.anomaly_label]),
    }


def _median(values: _FLOAT) -> float:
    return float(np.median(values)) if values.size else math.nan


def _subset(predictions: Predictions, system: str) -> Predictions:
    components = predictions.component_system == system
    sensors = predictions.sensor_system == system
    return Predictions(
        **{
            name: getattr(predictions, name)[sensors if name in _SENSOR_FIELDS else components]
            for name in _field_names()
        }
    )


def _field_names() -> list[str]:
    return [field.name for field in fields(Predictions)]


def evaluate_windows(
    model: UniversalTemporalGNN, windows: Sequence[LabelledWindow], *, batch_size: int = 64
) -> dict[str, Any]:
    """Metrics per machine and over all machines (fault labels pooled as ``system:fault``).

    Returns:
        ``{"overall": {...}, "per_system": {system: {...}}, "windows": int}``.
    """
    predictions = predict(model, windows, batch_size=batch_size)
    per_system = {
        system: compute_metrics(_subset(predictions, system))
        for system in sorted(set(predictions.component_system.tolist()))
    }
    pooled = Predictions(
        **{
            **{name: getattr(predictions, name) for name in _field_names()},
            "label_true": _qualified(predictions.component_system, predictions.label_true),
            "label_pred": _qualified(predictions.component_system, predictions.label_pred),
        }
    )
    return {"windows": len(windows), "overall": compute_metrics(pooled), "per_system": per_system}


def _qualified(systems: npt.NDArray[np.str_], labels: npt.NDArray[np.str_]) -> npt.NDArray[np.str_]:
    qualified = np.char.add(np.char.add(systems, ":"), labels)
    return np.where((labels == "normal") | (labels == UNKNOWN), labels, qualified)


# --- window-level metrics, shared by the GNN and the baseline -----------------------------


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
        _qualified(p.component_system[rows], p.label_true[rows]),
        _qualified(p.component_system[rows], p.label_pred[rows]),
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
    qualified = (
        p.component_id
        if np.unique(p.component_system).size <= 1
        else _qualified(p.component_system, p.component_id)
    )
    known = p.label_true != UNKNOWN
    right = p.label_true == p.label_pred
    names = list(dict.fromkeys(qualified[known].tolist()))
    return {name: float(right[known & (qualified == name)].mean()) for name in names}


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
    """Why each undefined window metric is undefined, in words (``where`` names the data)."""
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
    if not (np.isfinite(p.rul_true) & (p.rul_true < RUL_CAP_HOURS)).any():
        reasons["rul_rmse_hours"] = (
            f"{where} has no component with a failure in sight (a known remaining life below "
            f"{RUL_CAP_HOURS:g} h)"
        )
    return reasons
