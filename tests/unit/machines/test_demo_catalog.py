"""Built-in machines: the four specs ship, load, and are the size the model is built for."""

from __future__ import annotations

import pytest

from machines import UnknownMachineError, builtin_names, builtin_spec, is_builtin
from schemas import SystemSpec

BUILT_IN = ["cnc_machine", "excavator", "industrial_robot", "injection_molding_machine"]


def test_the_four_built_in_machines_are_listed() -> None:
    assert builtin_names() == BUILT_IN


@pytest.mark.parametrize("name", BUILT_IN)
def test_each_built_in_spec_is_a_believable_machine(name: str) -> None:
    spec = builtin_spec(name)

    assert spec.name == name
    assert 15 <= len(spec.sensors) <= 40
    assert len(spec.fault_modes) >= 4
    assert spec.connections
    assert all(spec.sensors_of(component) for component in spec.component_ids)


def test_built_in_specs_are_cached_and_recognised() -> None:
    spec = builtin_spec("excavator")

    assert builtin_spec("excavator") is spec
    assert is_builtin(spec)
    assert not is_builtin(spec.model_copy(update={"description": "changed"}))


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownMachineError) as caught:
        builtin_spec("bulldozer")

    assert isinstance(caught.value, LookupError)
    assert caught.value.known == BUILT_IN
    assert "bulldozer" in str(caught.value)
    assert "excavator" in str(caught.value)


def test_a_built_in_spec_round_trips_through_json() -> None:
    spec = builtin_spec("industrial_robot")

    assert SystemSpec.model_validate_json(spec.model_dump_json()) == spec
