from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import redis
from prometheus_client import CollectorRegistry

from service.metrics import ServiceMetrics, family_names
from service.metrics_doc import metrics_doc
from service.queue_collector import QueueCollector


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_the_metrics_reference_matches_the_code() -> None:
    doc = Path(__file__).parents[3] / "docs" / "metrics.md"
    assert doc.read_text() == metrics_doc(), "run: gnn-service metrics docs"


def test_at_least_fifty_service_families_named_by_the_conventions() -> None:
    registry = CollectorRegistry()
    ServiceMetrics(registry, process_metrics=False)
    assert len(family_names(registry)) >= 50  # the queue families come on top
    registry.register(QueueCollector(lambda: None, ["q"]))
    names = family_names(registry)
    assert all(name.startswith("gnn_") for name in names)
    assert not [n for n in names if n.endswith("_milliseconds") or n.endswith("_ms")]


def _diagnosis(statuses: list[str], faults: list[str]) -> SimpleNamespace:
    components = [
        SimpleNamespace(health=0.9 if s == "ok" else 0.3, anomaly_score=1.0, status=s, fault=f)
        for s, f in zip(statuses, faults, strict=True)
    ]
    return SimpleNamespace(outcome="diagnosed", diagnosis=SimpleNamespace(components=components))


def test_outcomes_move_the_counters_by_kind_machine_status_and_fault() -> None:
    registry = CollectorRegistry()
    metrics = ServiceMetrics(registry, process_metrics=False)
    dead = SimpleNamespace(outcome="dead_lettered", dead_letter=SimpleNamespace(reason="oversize"))
    outcomes = [
        ("excavator", 100.0, _diagnosis(["ok", "warning"], ["normal", "pump_leak"])),
        ("excavator", 100.5, _diagnosis(["critical", "warning"], ["gearbox", "normal"])),
        ("", None, SimpleNamespace(outcome="expired")),
        ("", None, dead),
    ]
    metrics.record_outcomes(outcomes, stored_at=101.0)
    assert _value(registry, "gnn_snapshots_diagnosed_total") == 2
    assert _value(registry, "gnn_snapshots_expired_total") == 1
    assert _value(registry, "gnn_dead_letters_total", reason="oversize") == 1
    assert _value(registry, "gnn_diagnoses_total", machine="excavator", status="warning") == 1
    assert _value(registry, "gnn_diagnoses_total", machine="excavator", status="critical") == 1
    assert _value(registry, "gnn_predicted_faults_total", fault="pump_leak") == 1
    assert _value(registry, "gnn_component_health_ratio_count") == 4
    assert _value(registry, "gnn_end_to_end_seconds_sum") == 1.0 + 0.5


def test_breaker_and_pause_gauges_follow_the_transitions() -> None:
    registry = CollectorRegistry()
    metrics = ServiceMetrics(registry, process_metrics=False)
    assert _value(registry, "gnn_breaker_state", state="closed") == 1
    metrics.record_breaker("closed", "open")
    metrics.record_pause("database", True)
    metrics.record_pause("database", True)  # still the same pause
    assert _value(registry, "gnn_breaker_state", state="open") == 1
    assert _value(registry, "gnn_breaker_state", state="closed") == 0
    assert (
        _value(registry, "gnn_breaker_transitions_total", from_state="closed", to_state="open") == 1
    )
    assert _value(registry, "gnn_consumption_pauses_total", reason="database") == 1
    assert _value(registry, "gnn_db_available") == 0
    metrics.record_pause("database", False)
    assert _value(registry, "gnn_consumption_paused", reason="database") == 0
    assert _value(registry, "gnn_db_available") == 1


def test_the_queue_collector_reports_a_broker_that_is_down_without_failing_the_scrape() -> None:
    def refused() -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)

    registry = CollectorRegistry()
    registry.register(QueueCollector(refused, ["q"]))
    assert _value(registry, "gnn_broker_up") == 0
    assert registry.get_sample_value("gnn_queue_depth_messages", {"queue": "q"}) is None


def test_every_dead_letter_reason_has_a_series_at_zero_before_the_first() -> None:
    from schemas.outcomes import DeadLetterReason

    registry = CollectorRegistry()
    ServiceMetrics(registry, process_metrics=False)
    for reason in DeadLetterReason:
        # Present (not None): a dashboard shows 0, not "No data".
        assert registry.get_sample_value("gnn_dead_letters_total", {"reason": reason.value}) == 0
