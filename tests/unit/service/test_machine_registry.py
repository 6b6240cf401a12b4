"""The machine registry (SQLite and PostgreSQL) and a worker's book of machines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_helpers import open_stores

from machines.catalog import builtin_names, builtin_spec
from schemas import SystemSpec, load_spec
from service.db.machines import (
    MachineRegistry,
    MachineRegistryError,
    MachineStatus,
    register_builtin_machines,
)
from worker.machine_book import BUILTIN_VERSION, MachineBook

_PRESS = load_spec(Path(__file__).parents[3] / "docs" / "examples" / "hydraulic_press.yaml")


@pytest.fixture
def machines(migrated_database_url: str, tmp_path: Path) -> Iterator[MachineRegistry]:
    with open_stores(migrated_database_url, tmp_path / "cache") as (_, registry):
        yield registry


def _changed(spec: SystemSpec) -> SystemSpec:
    return spec.model_copy(update={"description": "after the refit"})


def test_a_spec_is_versioned_only_when_it_changes(machines: MachineRegistry) -> None:
    first, created = machines.register(_PRESS)
    assert (first.name, first.version, first.status, created) == (
        "hydraulic_press",
        1,
        MachineStatus.ACTIVE,
        True,
    )
    token = machines.token()
    again, created = machines.register(_PRESS)
    assert (again.version, created, machines.token()) == (1, False, token)
    second, created = machines.register(_changed(_PRESS))
    assert (second.version, created) == (2, True)
    assert machines.token() != token
    assert [(v.version, v.status) for v in machines.history("hydraulic_press")] == [
        (1, MachineStatus.SUPERSEDED),
        (2, MachineStatus.ACTIVE),
    ]
    assert machines.get("hydraulic_press", 1).spec == _PRESS
    assert machines.current("hydraulic_press") == second


def test_a_retired_machine_resolves_to_nothing_until_registered_again(
    machines: MachineRegistry,
) -> None:
    machines.register(_PRESS)
    token = machines.token()
    retired = machines.retire("hydraulic_press")
    assert retired.status is MachineStatus.RETIRED
    assert machines.token() != token
    assert machines.current("hydraulic_press") is None
    assert machines.active() == []
    back, created = machines.register(_PRESS)  # the same spec brings it back as a new version
    assert (back.version, back.status, created) == (2, MachineStatus.ACTIVE, True)
    with pytest.raises(MachineRegistryError, match=r"no machine named 'nope'.*hydraulic_press"):
        machines.retire("nope")
    with pytest.raises(MachineRegistryError, match="no version 7"):
        machines.get("hydraulic_press", 7)


def test_demo_machines_are_registered_once_and_a_retired_one_stays_retired(
    machines: MachineRegistry,
) -> None:
    assert [item.name for item in register_builtin_machines(machines)] == builtin_names()
    assert register_builtin_machines(machines) == []
    machines.retire("excavator")
    assert register_builtin_machines(machines) == []
    assert machines.current("excavator") is None


def test_the_book_resolves_names_with_versions_and_follows_the_registry(
    machines: MachineRegistry,
) -> None:
    book = MachineBook(machines, min_refresh_s=3600)
    book.start()
    assert book.lookup("excavator") == (builtin_spec("excavator"), "1")
    with pytest.raises(LookupError, match="no machine named 'hydraulic_press' is registered"):
        book("hydraulic_press")
    machines.register(_PRESS)
    with pytest.raises(LookupError):  # looked less than min_refresh_s ago
        book("hydraulic_press")
    assert book.refresh()  # between batches: the token changed
    assert book.lookup("hydraulic_press") == (_PRESS, "1")
    assert not book.refresh()  # nothing changed since
    machines.register(_changed(_PRESS))
    machines.retire("excavator")
    book.refresh()
    assert book.version_of("hydraulic_press") == "2"
    with pytest.raises(LookupError, match="'excavator' is retired"):
        book("excavator")


def test_an_unknown_name_makes_the_book_look_again(machines: MachineRegistry) -> None:
    book = MachineBook(machines, min_refresh_s=0.0)
    book.start()
    machines.register(_PRESS)
    assert book("hydraulic_press") == _PRESS  # registered a moment ago: found on a miss


def test_without_a_registry_the_demo_machines_resolve_from_the_catalog() -> None:
    book = MachineBook(None)
    book.start()
    assert book.lookup("cnc_machine") == (builtin_spec("cnc_machine"), BUILTIN_VERSION)
    assert book.version_of("hydraulic_press") is None
