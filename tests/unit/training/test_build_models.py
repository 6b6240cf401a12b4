from __future__ import annotations

from pathlib import Path

from training.build_models import BuildPlan, build
from training.fit import TrainConfig
from training.pipeline import DataPlan
from worker.model import ModelConfig, load_checkpoint


def test_a_build_ships_a_loadable_checkpoint_and_a_model_card_with_every_number(
    tmp_path: Path, tiny_config: ModelConfig
) -> None:
    data = DataPlan(
        hours=1.5,
        val_hours=0.75,
        test_hours=0.75,
        max_run_hours=0.25,
        stride_s=300,
        eval_stride_s=300,
    )
    quick = TrainConfig(epochs=1, threads=1)
    plan = BuildPlan(
        version="0.0.1",
        systems=("excavator", "industrial_robot"),
        data=data,
        model=tiny_config,
        train=quick,
        holdouts=("industrial_robot",),
        universality_data=data,
        universality_train=quick,
    )
    lines: list[str] = []
    card = tmp_path / "docs" / "models.md"
    report = build(plan, bundled_dir=tmp_path / "bundled", model_card=card, say=lines.append)

    loaded = load_checkpoint(tmp_path / "bundled" / "universal.gnnckpt")
    assert (loaded.name, loaded.version, loaded.sha256) == ("universal", "0.0.1", report["sha256"])
    assert set(loaded.metadata.systems) == {"excavator", "industrial_robot"}
    assert loaded.metadata.metrics["test_unseen_seed"]["per_system"].keys() == {
        "excavator",
        "industrial_robot",
    }
    assert loaded.metadata.training["data"]["test"]["seed"] == data.test_seed
    universality = report["universality"][0]
    assert universality["trained_on"] == ["excavator"]
    assert universality["unseen_sensor_kinds"] == ["current", "voltage"]
    text = card.read_text()
    assert "| excavator |" in text
    assert "| industrial_robot (trained on excavator) |" in text
    assert f"whole build {report['timings_s']['total']:.0f} s" in text
    assert any(line.startswith("wrote ") for line in lines)
    # The statuses: calibrated on healthy validation windows (or said why not), measured on
    # the test runs with both sets of thresholds, and in the card.
    calibration = report["calibration"]
    assert set(report["alarms"]) == {"fixed", "calibrated"}
    assert "### Alarms" in text
    if calibration["calibrated"]:
        assert loaded.metadata.calibration == calibration
        assert "| calibrated |" in text
    else:
        assert loaded.metadata.calibration == {}
        assert f"Not calibrated: {calibration['reason']}." in text
