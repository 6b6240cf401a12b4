"""Quantile input scaling: a sensor's readings placed among its training quantiles, fitted on
training runs only, saved in the contract and applied the same way when serving."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from machines import builtin_spec, generate, read_run, write_run
from service.errors import ConfigurationError
from training.train_data import QUANTILE_KNOTS, DataRequest, prepare
from worker.model import FeatureContract, SpecGraphCache, encode_window
from worker.model.contract import QUANTILE_SPAN

SPEC = builtin_spec("cnc_machine")


def _contract(knots: dict[str, tuple[float, ...]]) -> FeatureContract:
    entries = tuple((SPEC.name, sensor, values) for sensor, values in knots.items())
    return FeatureContract(window_steps=4, forecast_horizon=1, input_quantiles=entries)


def _encoded(contract: FeatureContract, sensor: str, values: list[float]) -> np.ndarray:
    graph = SpecGraphCache(contract).get(SPEC)
    readings = {s: [SPEC.sensors[graph.sensor_index[s]].normal[0]] * 4 for s in SPEC.sensor_ids}
    readings[sensor] = values
    sample = encode_window(graph, readings, 1.0, contract)
    return np.asarray(sample.x[graph.sensor_index[sensor]])


def test_a_reading_lands_where_it_falls_among_the_knots_and_beyond_them_linearly() -> None:
    sensor = SPEC.sensor_ids[0]
    contract = _contract({sensor: (10.0, 11.0, 20.0)})  # lands at -2, 0, +2
    x = _encoded(contract, sensor, [10.5, 15.5, 20.0, 29.0])
    # 10.5: half-way to the middle knot; 15.5: half-way to the top; beyond the top at the
    # whole span's slope (4 per 10 units).
    assert x == pytest.approx([-1.0, 1.0, QUANTILE_SPAN, QUANTILE_SPAN + 9 * 0.4], abs=1e-5)


def test_tied_knots_land_once_and_other_sensors_keep_their_range() -> None:
    sensor, other = SPEC.sensor_ids[0], SPEC.sensor_ids[1]
    contract = _contract({sensor: (0.0, 1.0, 1.0, 1.0, 2.0)})  # 1.0 fills three quantiles
    assert _encoded(contract, sensor, [0.0, 1.0, 2.0, 2.0]) == pytest.approx(
        [-2.0, 0.0, 2.0, 2.0], abs=1e-6
    )
    low, high = SPEC.sensors[1].normal
    assert _encoded(contract, other, [low, high, (low + high) / 2, low]) == pytest.approx(
        [-1.0, 1.0, 0.0, -1.0], abs=1e-5
    )


def test_the_knots_survive_the_checkpoint_json_and_bad_knots_are_refused() -> None:
    contract = _contract({SPEC.sensor_ids[0]: (1.0, 2.0, 4.0)})
    again = FeatureContract.from_dict(json.loads(json.dumps(contract.to_dict())))
    assert again == contract
    assert again.quantiles_of(SPEC.name) == {SPEC.sensor_ids[0]: (1.0, 2.0, 4.0)}
    with pytest.raises(ConfigurationError, match="must not decrease"):
        _contract({SPEC.sensor_ids[0]: (3.0, 2.0)})
    with pytest.raises(ConfigurationError, match="finite"):
        _contract({SPEC.sensor_ids[0]: (1.0, float("nan"))})


def _files(tmp_path: Path) -> list[Path]:
    paths = []
    for seed in range(5):
        run = generate("cnc_machine", duration_s=600, seed=seed)
        paths.append(write_run(run, tmp_path / f"run{seed}.parquet"))
    return paths


def test_train_fits_the_knots_on_training_runs_only(tmp_path: Path) -> None:
    files = tuple((path, read_run(path)) for path in _files(tmp_path))
    request = DataRequest(files=files, val_runs=1, input_scaling="quantiles")
    data = prepare(request)
    assert data.split is not None
    (held_out,) = data.split.val
    knots = data.contract.quantiles_of(SPEC.name)
    assert set(knots) == set(SPEC.sensor_ids)
    assert all(len(values) == QUANTILE_KNOTS for values in knots.values())

    # Poison the held-out run's readings: the fitted knots do not move.
    poisoned = tuple(
        (path, run) if path.stem != Path(held_out.name).stem else (path, _scaled(run, 1e6))
        for path, run in files
    )
    again = prepare(DataRequest(files=poisoned, val_runs=1, input_scaling="quantiles"))
    assert again.contract.input_quantiles == data.contract.input_quantiles
    # The windows are encoded under the fitted contract: in the quantiles' span.
    x = np.concatenate([np.asarray(w.sample.x).ravel() for r in data.train for w in r.windows])
    assert np.abs(x).max() <= QUANTILE_SPAN + 1e-5


def _scaled(run, factor: float):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    return replace(run, readings=run.readings * factor)


def test_range_scaling_leaves_the_contract_without_knots(tmp_path: Path) -> None:
    files = tuple((path, read_run(path)) for path in _files(tmp_path)[:3])
    assert prepare(DataRequest(files=files, val_runs=1)).contract.input_quantiles is None


def test_train_tries_both_scalings_and_keeps_the_one_better_on_validation(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from cli.train import train
    from worker.model.loader import load_checkpoint

    app = typer.Typer(pretty_exceptions_enable=False)
    app.command()(train)
    files = _files(tmp_path)
    args = [*(f"--data={path}" for path in files), "--epochs=1", "--out", str(tmp_path / "m")]
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, [*args, "--name", "cnc"])
    assert result.exit_code == 0, result.output
    assert "input scaling range: validation window anomaly AUROC" in result.stdout
    assert "input scaling quantiles: validation window anomaly AUROC" in result.stdout
    record = load_checkpoint(tmp_path / "m" / "cnc.gnnckpt").metadata.training
    chosen = record["input_scaling"]
    scores = chosen["validation_score"]
    assert set(scores) == {"range", "quantiles"}
    finite = {k: (v if v is not None else float("-inf")) for k, v in scores.items()}
    best = "quantiles" if finite["quantiles"] > finite["range"] else "range"
    assert chosen["chosen"] == best
    assert f"input scaling: {best} (better on the validation runs)" in result.stdout
    knots = load_checkpoint(tmp_path / "m" / "cnc.gnnckpt").contract.input_quantiles
    assert (knots is not None) == (best == "quantiles")

    # Asked for one scaling, train trains that one only.
    again = CliRunner(env={"COLUMNS": "250"}).invoke(
        app, [*args, "--name", "cnc2", "--input-scaling", "quantiles"]
    )
    assert again.exit_code == 0, again.output
    assert "input scaling range" not in again.stdout
    assert load_checkpoint(tmp_path / "m" / "cnc2.gnnckpt").contract.input_quantiles
