"""The machines a worker knows by name: the registry's active specs, held in memory.

Snapshots that name their machine (``"spec": "press_line_3"``) are resolved here without a
database round trip: the book holds every active machine of the registry, and refreshes
when the registry's token changes (checked between batches with the model registry, at
once after ``machines register`` tells the workers). A name the book does not hold makes it
look again, at most once per ``min_refresh_s``, so that a machine registered a moment ago is
found. Built-in demo machines missing from the registry (a database that was never
upgraded) resolve from the catalog; a retired machine resolves to nothing.
"""

from __future__ import annotations

import threading
import time

from loguru import logger

from machines.catalog import builtin_names, builtin_spec
from schemas import SystemSpec
from service.db.machines import MachineRegistry, MachineStatus, register_builtin_machines
from service.errors import TransientError

#: The spec version of a demo machine resolved from the catalog, not the registry.
BUILTIN_VERSION = "builtin"


class MachineBook:
    """Active machine specs by name, refreshed from the registry on change.

    Args:
        registry: The machine registry (``None``: the built-in catalog only).
        min_refresh_s: Least time between two looks caused by unknown names.
    """

    def __init__(self, registry: MachineRegistry | None, *, min_refresh_s: float = 1.0) -> None:
        self.registry = registry
        self.min_refresh_s = min_refresh_s
        self._specs: dict[str, tuple[SystemSpec, str]] = {}
        self._retired: set[str] = set()
        self._token: str | None = None
        self._looked_at = -float("inf")
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MachineBook(machines={len(self._specs)}, retired={len(self._retired)})"

    def start(self) -> None:
        """Register the demo machines (first use) and read every active machine.

        Raises:
            TransientError: The database cannot be reached (the caller retries).
        """
        if self.registry is not None:
            register_builtin_machines(self.registry)
        self.refresh(force=True)

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read the registry when its token changed (or ``force``); True when re-read.

        A registry outage keeps the machines known so far.
        """
        if self.registry is None:
            return False
        self._looked_at = time.monotonic()
        try:
            token = self.registry.token()
            if token == self._token and not force:
                return False
            newest = self.registry.newest()
        except TransientError as exc:
            logger.warning(
                "machine registry unavailable; keeping the known machines", error=str(exc)
            )
            return False
        specs = {
            item.name: (item.spec, str(item.version))
            for item in newest
            if item.status is MachineStatus.ACTIVE
        }
        retired = {item.name for item in newest if item.status is MachineStatus.RETIRED}
        with self._lock:
            self._specs, self._retired, self._token = specs, retired, token
        logger.debug("machines read from the registry", active=len(specs), retired=len(retired))
        return True

    def __call__(self, name: str) -> SystemSpec:
        """The spec of the machine called ``name``.

        Raises:
            LookupError: Unknown or retired machine (the message says which).
        """
        return self.lookup(name)[0]

    def lookup(self, name: str) -> tuple[SystemSpec, str]:
        """The spec of ``name`` and its version (``"3"``, or ``builtin``).

        Raises:
            LookupError: Unknown or retired machine (the message says which).
        """
        found = self._find(name)
        if found is None and time.monotonic() - self._looked_at >= self.min_refresh_s:
            self.refresh()
            found = self._find(name)
        if found is not None:
            return found
        if name in self._retired:
            raise LookupError(
                f"machine {name!r} is retired (gnn-service machines register brings it back)"
            )
        if name in builtin_names():
            return builtin_spec(name), BUILTIN_VERSION
        raise LookupError(
            f"no machine named {name!r} is registered (gnn-service machines register SPEC.yaml)"
        )

    def version_of(self, name: str) -> str | None:
        """The version of the spec ``name`` resolves to now (None when it resolves to none)."""
        try:
            return self.lookup(name)[1]
        except LookupError:
            return None

    def specs(self, names: list[str]) -> list[SystemSpec]:
        """The specs of those ``names`` that resolve (for warming a model up)."""
        found = []
        for name in names:
            try:
                found.append(self.lookup(name)[0])
            except LookupError:
                continue
        return found

    def _find(self, name: str) -> tuple[SystemSpec, str] | None:
        with self._lock:
            return self._specs.get(name)
