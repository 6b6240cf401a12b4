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

Window-level metrics, which score the GNN and the same-run baseline alike, are in
:mod:`training.window_scores`.
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
            "label_true": qualified(predictions.component_system, predictions.label_true),
            "label_pred": qualified(predictions.component_system, predictions.label_pred),
        }
    )
    return {"windows": len(windows), "overall": compute_metrics(pooled), "per_system": per_system}


def qualified(systems: npt.NDArray[np.str_], labels: npt.NDArray[np.str_]) -> npt.NDArray[np.str_]:
    qualified = np.char.add(np.char.add(systems, ":"), labels)
    return np.where((labels == "normal") | (labels == UNKNOWN), labels, qualified)
