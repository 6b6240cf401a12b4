"""SystemSpec: loading, the vocabulary contract, and every validation error's path and message."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas import (
    CONNECTION_TYPES,
    SENSOR_KINDS,
    UNITS_BY_KIND,
    SpecError,
    SystemSpec,
    load_spec,
    parse_spec,
)

REPO = Path(__file__).resolve().parents[3]


def small_machine() -> dict[str, Any]:
    """A valid two-component machine that each bad case below breaks in one way."""
    return {
        "name": "press",
        "components": [
            {"id": "pump", "type": "hydraulic_pump"},
            {"id": "ram", "type": "hydraulic_cylinder"},
            {"id": "frame", "type": "structure"},
        ],
        "sensors": [
            {
                "id": "p1",
                "component": "pump",
                "kind": "pressure",
                "unit": "bar",
                "normal": [5, 180],
                "critical": [0, 220],
            },
            {
                "id": "t1",
                "component": "pump",
                "kind": "temperature",
                "unit": "degC",
                "normal": [30, 55],
                "critical": [10, 70],
            },
            {
                "id": "x1",
                "component": "ram",
                "kind": "position",
                "unit": "mm",
                "normal": [0, 400],
                "critical": [0, 420],
            },
        ],
        "connections": [
            {
                "source": "pump",
                "target": "ram",
                "type": "hydraulic_line",
                "attributes": {"length_m": 2.0},
            },
        ],
        "fault_modes": [
            {"id": "pump_wear", "component": "pump", "affected_sensors": ["p1", "t1"]},
        ],
    }


def test_a_valid_machine_parses_with_its_lookups() -> None:
    spec = parse_spec(small_machine())

    assert spec.sensor_ids == ("p1", "t1", "x1")
    assert spec.component_ids == ("pump", "ram", "frame")
    assert spec.sensor_index["x1"] == 2
    assert spec.component_index["ram"] == 1
    assert [s.id for s in spec.sensors_of("pump")] == ["p1", "t1"]
    assert spec.sensors_of("frame") == ()  # a component without sensors is allowed
    assert spec.sensor("t1").unit == "degC"
    assert spec.fault_mode("pump_wear").component == "pump"
    assert spec.fault_modes_of("pump")[0].id == "pump_wear"
    assert spec.sensors[0].sample_rate_hz == 1.0


def test_cached_lookups_stay_out_of_equality_and_serialisation() -> None:
    spec = parse_spec(small_machine())
    _ = spec.sensor_index, spec.component_ids, spec.sensors_of("pump")

    assert spec == parse_spec(small_machine())
    assert "sensor_index" not in spec.model_dump()
    assert SystemSpec.model_validate_json(spec.model_dump_json()) == spec


def set_at(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Copy ``data`` with the dotted ``path`` (list indices as numbers) set to ``value``."""
    result = copy.deepcopy(data)
    *parents, last = path.split(".")
    node: Any = result
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return result


BAD_SPECS = [
    pytest.param(
        set_at(small_machine(), "components.1.id", "pump"),
        "components[1].id",
        "duplicate component id 'pump' (first at components[0])",
        id="duplicate-component",
    ),
    pytest.param(
        set_at(small_machine(), "sensors.2.id", "p1"),
        "sensors[2].id",
        "duplicate sensor id 'p1'",
        id="duplicate-sensor",
    ),
    pytest.param(
        set_at(
            small_machine(),
            "fault_modes",
            [
                {"id": "leak", "component": "pump", "affected_sensors": ["p1"]},
                {"id": "leak", "component": "ram", "affected_sensors": ["x1"]},
            ],
        ),
        "fault_modes[1].id",
        "duplicate fault mode id 'leak'",
        id="duplicate-fault",
    ),
    pytest.param(
        set_at(small_machine(), "sensors.0.component", "pmp"),
        "sensors[0].component",
        "unknown component 'pmp'",
        id="dangling-sensor-component",
    ),
    pytest.param(
        set_at(small_machine(), "connections.0.target", "x"),
        "connections[0].target",
        "unknown component 'x'",
        id="unknown-connection-target",
    ),
    pytest.param(
        set_at(small_machine(), "connections.0.source", "pumpp"),
        "connections[0].source",
        "unknown component 'pumpp' (did you mean 'pump'?)",
        id="unknown-connection-source-with-hint",
    ),
    pytest.param(
        set_at(small_machine(), "connections.0.target", "pump"),
        "connections[0].target",
        "self-loop: source and target are both 'pump'",
        id="self-loop",
    ),
    pytest.param(
        set_at(small_machine(), "connections.0.type", "pipe"),
        "connections[0].type",
        "unknown connection type 'pipe'",
        id="unknown-connection-type",
    ),
    pytest.param(
        set_at(small_machine(), "sensors.1.kind", "temprature"),
        "sensors[1].kind",
        "unknown sensor kind 'temprature'",
        id="unknown-kind",
    ),
    pytest.param(
        set_at(small_machine(), "sensors.1.unit", "C"),
        "sensors[1].unit",
        "unknown unit 'C' for a temperature sensor; expected one of: degC, K, degF",
        id="unknown-unit",
    ),
    pytest.param(
        set_at(small_machine(), "sensors.0.normal", [180, 5]),
        "sensors[0].normal",
        "min 180 is greater than max 5",
        id="min-greater-than-max",
    ),
    pytest.param(
        set_at(small_machine(), "sensors.0.critical", [10, 100]),
        "sensors[0].critical",
        "normal range [5, 180] is not inside critical range [10, 100]",
        id="normal-outside-critical",
    ),
    pytest.param(
        set_at(small_machine(), "sensors.0.sample_rate_hz", 0),
        "sensors[0].sample_rate_hz",
        "input should be greater than 0",
        id="zero-sample-rate",
    ),
    pytest.param(
        set_at(small_machine(), "sensors", []),
        "sensors",
        "a machine needs at least one sensor",
        id="machine-without-sensors",
    ),
    pytest.param(
        set_at(small_machine(), "fault_modes.0.affected_sensors", ["p1", "p9"]),
        "fault_modes[0].affected_sensors[1]",
        "unknown sensor 'p9'",
        id="fault-affects-unknown-sensor",
    ),
    pytest.param(
        set_at(small_machine(), "fault_modes.0.component", "valve"),
        "fault_modes[0].component",
        "unknown component 'valve'",
        id="fault-on-unknown-component",
    ),
    pytest.param(
        set_at(small_machine(), "fault_modes.0.id", "normal"),
        "fault_modes[0].id",
        "'normal' is reserved",
        id="reserved-fault-id",
    ),
    pytest.param(
        set_at(small_machine(), "sensors.2.extra", 1),
        "sensors[2].extra",
        "extra inputs are not permitted",
        id="unknown-field",
    ),
    pytest.param(
        {k: v for k, v in small_machine().items() if k != "name"},
        "name",
        "field required",
        id="missing-name",
    ),
]


@pytest.mark.parametrize(("data", "path", "message"), BAD_SPECS)
def test_each_bad_spec_names_the_path_and_the_problem(
    data: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(data)

    matching = [issue for issue in caught.value.issues if issue[0] == path]
    assert matching, f"no issue at {path}: {caught.value.issues}"
    assert message in matching[0][1]
    assert f"{path}: " in str(caught.value)


def test_all_cross_reference_problems_are_reported_at_once() -> None:
    data = set_at(small_machine(), "sensors.0.component", "pmp")
    data = set_at(data, "connections.0.target", "rm")

    with pytest.raises(SpecError) as caught:
        parse_spec(data)

    assert [path for path, _ in caught.value.issues] == [
        "sensors[0].component",
        "connections[0].target",
    ]
    assert str(caught.value).splitlines() == [f"{p}: {m}" for p, m in caught.value.issues]


def test_constructing_a_spec_directly_raises_with_the_same_messages() -> None:
    with pytest.raises(ValueError, match=r"connections\[0\]\.target: unknown component 'x'"):
        SystemSpec.model_validate(set_at(small_machine(), "connections.0.target", "x"))


def test_yaml_and_json_files_load_alike(tmp_path: Path) -> None:
    yaml_file = tmp_path / "press.yaml"
    json_file = tmp_path / "press.json"
    yaml_file.write_text(yaml.safe_dump(small_machine()))
    json_file.write_text(json.dumps(small_machine()))

    assert load_spec(yaml_file) == load_spec(json_file) == parse_spec(small_machine())


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.yaml", "name: x\ncomponents: [\n", "invalid YAML: line 3, column 1"),
        ("bad.json", '{"name": "x",', "invalid JSON: line 1"),
        ("list.yaml", "- a\n- b\n", "expected a mapping, got list"),
        ("machine.toml", "name = 'x'", "unsupported file type '.toml'"),
    ],
)
def test_unparseable_files_are_spec_errors_naming_the_file(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    assert message in str(caught.value)
    if not name.startswith("list"):
        assert caught.value.issues[0][0] == str(path)


def test_a_missing_file_is_a_spec_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read file"):
        load_spec(tmp_path / "absent.yaml")


def test_the_documented_example_machine_loads() -> None:
    spec = load_spec(REPO / "docs" / "examples" / "hydraulic_press.yaml")

    assert spec.name == "hydraulic_press"
    assert len(spec.sensors) >= 5
    assert spec.fault_modes


def test_vocabulary_order_is_the_stable_embedding_contract() -> None:
    assert SENSOR_KINDS == (
        "pressure",
        "temperature",
        "vibration",
        "flow",
        "current",
        "voltage",
        "power",
        "speed",
        "position",
        "force",
        "torque",
        "level",
        "other",
        "acceleration",
    )
    assert CONNECTION_TYPES == (
        "hydraulic_line",
        "mechanical_shaft",
        "coupling",
        "electrical",
        "thermal",
        "signal",
        "pneumatic_line",
        "coolant_line",
        "structural",
    )
    assert set(UNITS_BY_KIND) == set(SENSOR_KINDS)


def test_other_kind_accepts_any_non_empty_unit() -> None:
    spec = parse_spec(
        set_at(set_at(small_machine(), "sensors.0.kind", "other"), "sensors.0.unit", "dB")
    )

    assert spec.sensors[0].unit == "dB"
    with pytest.raises(SpecError, match=r"sensors\[0\]\.unit"):
        parse_spec(set_at(set_at(small_machine(), "sensors.0.kind", "other"), "sensors.0.unit", ""))
