"""The batch processor with a real (small, seeded) model: short windows are diagnosed with a
warning naming the steps they cover, and counted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pipeline_helpers import received
from prometheus_client import CollectorRegistry

from machines.catalog import builtin_spec
from schemas import Diagnosis
from service.metrics import ServiceMetrics
from service.settings import Settings
from worker.engine import ModelRunner
from worker.model import FeatureContract, ModelConfig, UniversalTemporalGNN
from worker.pipeline import BatchProcessor

SYSTEM = "excavator"


def _snapshot(snapshot_id: str, steps: int, rate_hz: float) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    readings = {
        sensor.id: [float(v) for v in rng.uniform(sensor.normal[0], sensor.normal[1], size=steps)]
        for sensor in builtin_spec(SYSTEM).sensors
    }
    return {
        "snapshot_id": snapshot_id,
        "system_id": f"{SYSTEM}-1",
        "spec": SYSTEM,
        "window": {
            "start": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
            "sample_rate_hz": rate_hz,
            "readings": readings,
        },
    }


@pytest.fixture
def metrics() -> ServiceMetrics:
    return ServiceMetrics(CollectorRegistry(), process_metrics=False)


@pytest.fixture
def processor(tmp_path: Path, metrics: ServiceMetrics) -> BatchProcessor:
    torch.manual_seed(0)
    contract = FeatureContract()
    runner = ModelRunner(
        model=UniversalTemporalGNN(ModelConfig(hidden=16, heads=2), contract),
        contract=contract,
        version="test:1",
        device=torch.device("cpu"),
    )
    return BatchProcessor(
        settings=Settings(data_dir=tmp_path),
        runner=runner,
        resolve_spec=builtin_spec,
        metrics=metrics,
    )


def _short_windows(metrics: ServiceMetrics, resampled: str) -> float:
    value = metrics.registry.get_sample_value("gnn_short_windows_total", {"resampled": resampled})
    assert value is not None
    return value


def _diagnoses(processor: BatchProcessor, *snapshots: dict[str, Any]) -> dict[str, Diagnosis]:
    result = processor.process([received(snapshot) for snapshot in snapshots])
    assert not result.failed
    found = {}
    for item in result.finished:
        assert item.outcome.outcome == "diagnosed", item.outcome
        found[item.snapshot_id] = item.outcome.diagnosis
    return found


def test_short_windows_are_diagnosed_with_a_warning_naming_the_steps_and_counted(
    processor: BatchProcessor, metrics: ServiceMetrics
) -> None:
    found = _diagnoses(
        processor,
        _snapshot("full", 60, 1.0),
        _snapshot("short", 20, 1.0),
        _snapshot("fast", 60, 35.0),  # 60 samples at 35 Hz span 2 steps of the 1 Hz model
        _snapshot("fast-full", 600, 10.0),
    )
    assert not any("short window" in w for w in found["full"].warnings)
    assert not any("short window" in w for w in found["fast-full"].warnings)
    (short,) = [w for w in found["short"].warnings if "short window" in w]
    assert "covers 20 of the model's 60 steps" in short
    assert "40 steps before it were padded" in short
    (fast,) = [w for w in found["fast"].warnings if "short window" in w]
    assert "covers 2 of the model's 60 steps" in fast
    assert _short_windows(metrics, "false") == 1.0
    assert _short_windows(metrics, "true") == 1.0


def test_a_processor_without_metrics_still_warns(tmp_path: Path) -> None:
    torch.manual_seed(0)
    contract = FeatureContract()
    runner = ModelRunner(
        model=UniversalTemporalGNN(ModelConfig(hidden=16, heads=2), contract),
        contract=contract,
        version="test:1",
        device=torch.device("cpu"),
    )
    processor = BatchProcessor(
        settings=Settings(data_dir=tmp_path), runner=runner, resolve_spec=builtin_spec
    )
    found = _diagnoses(processor, _snapshot("short", 10, 1.0))
    assert any("covers 10 of the model's 60 steps" in w for w in found["short"].warnings)
