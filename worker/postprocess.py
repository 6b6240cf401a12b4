"""Model outputs to a Diagnosis: statuses from thresholds, top faults, the RUL interval and
the sensors and connections that explain each component's result.

This runs for every snapshot on the hot path. Each output is copied to plain Python lists
once; the component records are built as plain dicts and checked against the schema in one
pydantic-core call (:data:`_COMPONENTS`), which costs a fraction of building each nested
model in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import TypeAdapter

from machines import RUL_CAP_HOURS
from schemas import (
    NORMAL_FAULT,
    ComponentDiagnosis,
    Diagnosis,
    HealthStatus,
    Snapshot,
    Timings,
)
from service.settings import DiagnosisSettings
from worker.model import GraphSample, ModelOutput

_COMPONENTS: TypeAdapter[list[ComponentDiagnosis]] = TypeAdapter(list[ComponentDiagnosis])


@dataclass(frozen=True)
class _Values:
    """One graph's outputs as Python floats (one copy per field, then plain indexing)."""

    health: list[float]
    normal: list[float]
    fault: list[float]
    rul: list[float]
    rul_low: list[float]
    rul_high: list[float]
    sensor_score: list[float]  # how much each sensor explains: anomaly x (0.5 + attention)
    component_anomaly: list[float]
    machine_health: float

    @classmethod
    def of(cls, output: ModelOutput) -> _Values:
        low, high = output.rul_interval()
        # A sensor explains its component's result by how unusual it is (forecast residual)
        # and how much the component's embedding rests on it (attention).
        anomaly = output.sensor_anomaly.double()
        score = anomaly * (0.5 + output.sensor_attention.double())
        return cls(
            health=output.component_health.tolist(),
            normal=output.normal_prob.tolist(),
            fault=output.fault_prob.tolist(),
            rul=output.rul_hours.tolist(),
            rul_low=low.tolist(),
            rul_high=high.tolist(),
            sensor_score=score.tolist(),
            component_anomaly=output.component_anomaly.tolist(),
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


def _hours(value: float) -> float:
    """Remaining life in hours within ``[0, RUL_CAP_HOURS]``."""
    return min(max(0.0, value), RUL_CAP_HOURS)


def component_diagnoses(
    sample: GraphSample, output: ModelOutput, rules: DiagnosisSettings
) -> tuple[list[ComponentDiagnosis], float]:
    """Each component's diagnosis from one snapshot's share of a batch's output.

    Returns:
        The component records (schema-checked) and the machine's health.
    """
    graph = sample.graph
    values = _Values.of(output)
    anomalies = [max(0.0, value) for value in values.component_anomaly]
    k = rules.top_k
    records = []
    for c, component_id in enumerate(graph.component_ids):
        probabilities = {NORMAL_FAULT: _unit(values.normal[c])}
        for f in graph.component_faults[c].tolist():
            probabilities[graph.fault_ids[f]] = _unit(values.fault[f])
        fault = max(probabilities, key=probabilities.__getitem__)
        health = _unit(values.health[c])
        # Training targets stop at the cap ("no failure in sight"): so does the estimate.
        hours = _hours(values.rul[c])
        nodes = graph.component_sensors[c].tolist()
        ranked = sorted(nodes, key=lambda n: -values.sensor_score[n])[:k]  # stable: ties in order
        # A connection explains a component's result when the component at its other end is
        # anomalous too: effects travel along lines and shafts (a leaking pump starves a valve).
        links = sorted(
            ((anomalies[other], name) for name, other in graph.component_links[c]),
            key=lambda item: -item[0],
        )[:k]
        records.append(
            {
                "component_id": component_id,
                "health": health,
                "status": status_of(health, anomalies[c], 1.0 - probabilities[NORMAL_FAULT], rules),
                "fault": fault,
                "fault_probabilities": probabilities,
                "anomaly_score": anomalies[c],
                "rul": {
                    "hours": hours,
                    "low_hours": min(hours, _hours(values.rul_low[c])),
                    "high_hours": max(hours, _hours(values.rul_high[c])),
                },
                "top_sensors": [
                    {"id": graph.sensor_ids[n], "score": max(0.0, values.sensor_score[n])}
                    for n in ranked
                ],
                "top_connections": [{"id": name, "score": score} for score, name in links],
            }
        )
    return _COMPONENTS.validate_python(records), _unit(values.machine_health)


def assemble(
    *,
    snapshot: Snapshot,
    sample: GraphSample,
    components: list[ComponentDiagnosis],
    machine_health: float,
    model_version: str,
    spec_version: str | None,
    created_at: datetime,
    timings: Timings,
) -> Diagnosis:
    """The Diagnosis of one snapshot around its (already checked) component records."""
    warnings = []
    if sample.missing_sensors:
        warnings.append(f"no readings for sensors: {', '.join(sample.missing_sensors)}")
    if sample.nonfinite_count:
        warnings.append(f"{sample.nonfinite_count} NaN or infinite readings were masked")
    if sample.padded_steps:
        steps = int(sample.x.shape[1])
        warnings.append(
            f"short window: it covers {steps - sample.padded_steps} of the model's {steps} "
            f"steps (after resampling to the model's rate); the {sample.padded_steps} steps "
            "before it were padded and masked"
        )
    # Every field is either taken from the validated snapshot or checked above.
    return Diagnosis.model_construct(
        snapshot_id=snapshot.snapshot_id,
        system_id=snapshot.system_id,
        model_version=model_version,
        spec_version=spec_version,
        created_at=created_at,
        correlation_id=snapshot.correlation_id,
        machine_health=machine_health,
        components=components,
        timings=timings,
        warnings=warnings,
    )


def _unit(value: float) -> float:
    return min(1.0, max(0.0, value))
