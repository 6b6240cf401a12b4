"""``gnn-service demo`` commands, driven through Typer's test runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.demo import demo_app
from machines import read_run

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_list_shows_every_built_in_machine(runner: CliRunner) -> None:
    result = runner.invoke(demo_app, ["list"])

    assert result.exit_code == 0
    for name in ("excavator", "injection_molding_machine", "cnc_machine", "industrial_robot"):
        assert name in result.output


def test_show_lists_sensors_connections_and_faults(runner: CliRunner) -> None:
    result = runner.invoke(demo_app, ["show", "cnc_machine"], env={"COLUMNS": "200"})

    assert result.exit_code == 0
    for text in ("spindle_bearings", "bearing_vibration", "mm/s", "coolant_line", "tool_wear"):
        assert text in result.output


def test_validate_accepts_the_example_machine(runner: CliRunner) -> None:
    result = runner.invoke(demo_app, ["validate", str(REPO / "docs/examples/hydraulic_press.yaml")])

    assert result.exit_code == 0
    assert "valid machine 'hydraulic_press'" in result.output


def test_validate_lists_every_problem_and_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: press\n"
        "components: [{id: pump, type: pump}]\n"
        "sensors: [{id: p, component: pmp, kind: pressure, unit: bar, normal: [0, 9], critical: [0, 10]}]\n"
        "connections: [{source: pump, target: x, type: hydraulic_line}]\n"
    )

    result = runner.invoke(demo_app, ["validate", str(bad)])

    assert result.exit_code == 1
    assert "sensors[0].component: unknown component 'pmp'" in result.output
    assert "connections[0].target: unknown component 'x'" in result.output


def test_generate_writes_a_readable_run(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "run.parquet"

    result = runner.invoke(
        demo_app,
        [
            "generate",
            "--system",
            "excavator",
            "--duration",
            "10m",
            "--seed",
            "7",
            "--fault",
            "pump_internal_leak@2m:exponential",
            "--out",
            str(out),
        ],
    )

    assert result.exit_code == 0, result.output
    assert "simulated in" in result.output
    run = read_run(out)
    assert run.steps == 600
    assert run.seed == 7
    assert [f.fault_id for f in run.faults] == ["pump_internal_leak"]


@pytest.mark.parametrize(
    ("arguments", "option"),
    [
        (["--system", "bulldozer"], "--system"),
        (["--duration", "6 hours"], "--duration"),
        (["--fault", "pump_leak@1h"], "--fault"),
        (["--fault", "pump_internal_leak@1h:sudden"], "--fault"),
        (["--duration", "1s"], "--duration"),
    ],
)
def test_bad_input_is_one_error_naming_the_option_with_exit_2(
    runner: CliRunner, tmp_path: Path, arguments: list[str], option: str
) -> None:
    result = runner.invoke(demo_app, ["generate", "--out", str(tmp_path / "r.parquet"), *arguments])

    assert result.exit_code == 2
    assert f"Invalid value for {option}" in result.output
    assert "Traceback" not in result.output


def test_plot_draws_a_png(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "plot.png"

    result = runner.invoke(
        demo_app,
        [
            "plot",
            "--system",
            "industrial_robot",
            "--duration",
            "20m",
            "--fault",
            "gripper_pressure_loss@5m:linear:1:10m",
            "--out",
            str(out),
        ],
    )

    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
