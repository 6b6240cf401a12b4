"""Model outputs to a Diagnosis: statuses from thresholds, top faults, the RUL interval and
the sensors and connections that explain each component's result.

The records are built with ``model_construct`` (no validation): this runs for every snapshot
on the hot path, every value is produced here and clamped to its schema's range, and a test
validates the output of this module against the schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from schemas import (
    NORMAL_FAULT,
    ComponentDiagnosis,
    Contribution,
    Diagnosis,
    HealthStatus,
    RemainingLife,
    Snapshot,
    Timings,
)
from worker.model import GraphSample, ModelOutput
from worker.settings import DiagnosisSettings

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class _Arrays:
    """One graph's outputs as numpy arrays (one device-to-host copy, then plain indexing)."""

    health: FloatArray
    normal: FloatArray
    fault: FloatArray
    rul: FloatArray
    rul_low: FloatArray
    rul_high: FloatArray
    sensor_anomaly: FloatArray
    component_anomaly: FloatArray
    attention: FloatArray
    machine_health: float

    @classmethod
    def of(cls, output: ModelOutput) -> _Arrays:
        low, high = output.rul_interval()

        def arr(tensor: object) -> FloatArray:
            return np.asarray(tensor, dtype=np.float64)

        return cls(
            health=arr(output.component_health),
            normal=arr(output.normal_prob),
            fault=arr(output.fault_prob),
            rul=arr(output.rul_hours),
            rul_low=arr(low),
            rul_high=arr(high),
            sensor_anomaly=arr(output.sensor_anomaly),
            component_anomaly=arr(output.component_anomaly),
            attention=arr(output.sensor_attention),
            machine_health=float(output.machine_health[0]),
        )


def status_of(
    health: float, anomaly: float, fault_probability: float, rules: DiagnosisSettings
) -> HealthStatus:
    """ok, warning or critical, from the thresholds in ``rules``."""
    if health < rules.critical_health or anomaly >= rules.critical_anomaly:
        return "critical"
    if (
        health < rules.warning_health
        or anomaly >= rules.warning_anomaly
        or fault_probability >= rules.fault_probability
    ):
        return "warning"
    return "ok"


def diagnose(
    *,
    snapshot: Snapshot,
    sample: GraphSample,
    output: ModelOutput,
    model_version: str,
    rules: DiagnosisSettings,
    created_at: datetime,
    timings: Timings,
) -> Diagnosis:
    """Build the Diagnosis of one snapshot from its share of a batch's output."""
    graph = sample.graph
    values = _Arrays.of(output)
    sensors_of = graph.component_sensors
    faults_of = graph.component_faults
    components = []
    for c, component_id in enumerate(graph.component_ids):
        probabilities = {NORMAL_FAULT: _unit(values.normal[c])}
        for f in faults_of[c]:
            probabilities[graph.fault_ids[f]] = _unit(values.fault[f])
        fault = max(probabilities, key=lambda key: probabilities[key])
        fault_probability = 1.0 - probabilities[NORMAL_FAULT]
        anomaly = max(0.0, float(values.component_anomaly[c]))
        health = _unit(values.health[c])
        components.append(
            ComponentDiagnosis.model_construct(
                component_id=component_id,
                health=health,
                status=status_of(health, anomaly, fault_probability, rules),
                fault=fault,
                fault_probabilities=probabilities,
                anomaly_score=anomaly,
                rul=_remaining_life(values, c),
                top_sensors=_top_sensors(graph.sensor_ids, sensors_of[c], values, rules.top_k),
                top_connections=_top_connections(graph.component_links[c], values, rules.top_k),
            )
        )
    warnings = []
    if sample.missing_sensors:
        warnings.append(f"no readings for sensors: {', '.join(sample.missing_sensors)}")
    if sample.nonfinite_count:
        warnings.append(f"{sample.nonfinite_count} NaN or infinite readings were masked")
    return Diagnosis.model_construct(
        snapshot_id=snapshot.snapshot_id,
        system_id=snapshot.system_id,
        model_version=model_version,
        created_at=created_at,
        correlation_id=snapshot.correlation_id,
        machine_health=_unit(values.machine_health),
        components=components,
        timings=timings,
        warnings=warnings,
    )


def _unit(value: float) -> float:
    return float(min(1.0, max(0.0, value)))


def _remaining_life(values: _Arrays, c: int) -> RemainingLife:
    hours = max(0.0, float(values.rul[c]))
    low = min(hours, max(0.0, float(values.rul_low[c])))
    high = max(hours, float(values.rul_high[c]))
    return RemainingLife.model_construct(hours=hours, low_hours=low, high_hours=high)


def _top_sensors(
    sensor_ids: tuple[str, ...], nodes: npt.NDArray[np.intp], values: _Arrays, k: int
) -> list[Contribution]:
    # A sensor explains its component's result by how unusual it is (forecast residual)
    # and how much the component's embedding rests on it (attention).
    scores = values.sensor_anomaly[nodes] * (0.5 + values.attention[nodes])
    order = np.argsort(-scores, kind="stable")[:k]
    return [
        Contribution.model_construct(id=sensor_ids[nodes[i]], score=float(max(0.0, scores[i])))
        for i in order
    ]


def _top_connections(
    links: tuple[tuple[str, int], ...], values: _Arrays, k: int
) -> list[Contribution]:
    # A connection explains a component's result when the component at its other end is
    # anomalous too: effects travel along lines and shafts (a leaking pump starves a valve).
    scored = sorted(
        ((max(0.0, float(values.component_anomaly[other])), name) for name, other in links),
        key=lambda item: -item[0],
    )
    return [Contribution.model_construct(id=name, score=score) for score, name in scored[:k]]
