"""What ``gnn-service models activate`` checks before a version takes traffic.

A version of a model other than the fallback (``GNN_MODEL__NAME``) serves the machines it
declares; activating it is refused, with a one-line reason, when none of them is in service
(unregistered or retired), when another active model already serves one of them, or when
it fails as a worker would run it (load, encode windows of its machines, forward). The
fallback model serves every machine nothing else serves: it is tried on the demo machines.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from machines.catalog import builtin_names, builtin_spec
from schemas import SystemSpec
from service.db.machines import MachineRegistry, MachineStatus
from worker.model.registry import ModelVersion, RegistryError
from worker.model_router import routes_of
from worker.model_source import try_serving
from worker.model_store import DatabaseRegistry


@dataclass(frozen=True)
class ActivationPlan:
    """A version that may be activated, and the machines it will serve.

    Attributes:
        version: The version to activate.
        machines: Machines in service it will diagnose (empty for the fallback: all others).
        notes: Declared machines that are not in service (registered later, they route to
            it).
    """

    version: ModelVersion
    machines: tuple[str, ...]
    notes: tuple[str, ...]


def check_activation(
    models: DatabaseRegistry, machines: MachineRegistry, name: str, version: str, *, fallback: str
) -> ActivationPlan:
    """Check that ``name`` ``version`` can serve what it declares.

    Raises:
        RegistryError: Unknown version, or a one-line reason it may not be activated.
    """
    item = models.get(name, version)
    newest = machines.newest()
    in_service = {
        entry.name: entry.spec for entry in newest if entry.status is MachineStatus.ACTIVE
    }
    retired = {entry.name for entry in newest if entry.status is MachineStatus.RETIRED}
    for builtin in builtin_names():  # resolved from the catalog until registered
        if builtin not in retired and builtin not in in_service:
            in_service[builtin] = builtin_spec(builtin)
    if name == fallback:
        _try(item, [])
        return ActivationPlan(item, (), ())
    if not item.serves:
        raise RegistryError(
            f"model {name} {version} declares no machine to serve: register it again with "
            f"--serves MACHINE (or make it the fallback with GNN_MODEL__NAME={name})"
        )
    served = sorted(
        machine
        for machine in in_service
        if any(fnmatch.fnmatchcase(machine, pattern) for pattern in item.serves)
    )
    if not served:
        states = ", ".join(
            f"{pattern} ({'retired' if pattern in retired else 'not registered'})"
            for pattern in item.serves
        )
        raise RegistryError(
            f"model {name} {version} would serve no machine in service: {states}; "
            "register the machine first: gnn-service machines register SPEC.yaml"
        )
    others = [entry for entry in models.active_versions() if entry.name not in (name, fallback)]
    routes = routes_of(others, fallback)
    for machine in served:
        taken = [other for pattern, other in routes if fnmatch.fnmatchcase(machine, pattern)]
        if taken:
            raise RegistryError(
                f"machine {machine} is served by model {taken[0]} already: deactivate it "
                f"first (gnn-service models deactivate {taken[0]})"
            )
    _try(item, [in_service[machine] for machine in served])
    notes = tuple(
        f"{pattern} is {'retired' if pattern in retired else 'not registered'}"
        for pattern in item.serves
        if not any(fnmatch.fnmatchcase(machine, pattern) for machine in in_service)
    )
    return ActivationPlan(item, tuple(served), notes)


def _try(item: ModelVersion, specs: list[SystemSpec]) -> None:
    try:
        try_serving(item.path, specs)
    except Exception as exc:
        raise RegistryError(
            f"model {item.name} {item.version} cannot serve as a worker would run it: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
