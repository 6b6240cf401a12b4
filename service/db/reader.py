"""Synchronous reads of stored diagnoses, for the producer client, the CLI and live views."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.exc import OperationalError, ProgrammingError

from schemas import Diagnosis, Expired
from service.db.database import Database, LoopRunner
from service.db.machines import MachineVersion, active_machine
from service.db.repositories import Activity, DeadLetterEntry, OutcomeRepository
from service.errors import ConfigurationError
from service.settings import Settings, mask_url

T = TypeVar("T")


class DiagnosisReader:
    """Reads diagnoses from the configured database; opens its engine on first use.

    Args:
        settings: The service settings (database URL and pool).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._open: tuple[LoopRunner, Database, OutcomeRepository] | None = None

    def __repr__(self) -> str:
        return f"DiagnosisReader({mask_url(self.settings.database_url)!r})"

    def history(
        self, system_id: str, *, since: datetime | None = None, limit: int = 100
    ) -> list[Diagnosis]:
        """A system's diagnoses, newest first, created at or after ``since``."""
        return self._read(lambda repo: repo.history(system_id=system_id, since=since, limit=limit))

    def latest(self, system_id: str) -> Diagnosis | None:
        """A system's newest diagnosis, or None."""
        return self._read(lambda repo: repo.latest(system_id=system_id))

    def latest_per_system(self, *, limit: int = 1000) -> list[Diagnosis]:
        """The newest diagnosis of every system."""
        return self._read(lambda repo: repo.latest_per_system(limit=limit))

    def get(self, snapshot_id: str) -> Diagnosis | None:
        """The diagnosis of one snapshot, or None."""
        return self._read(lambda repo: repo.get_by_snapshot(snapshot_id=snapshot_id))

    def dead_letters(
        self, *, since: datetime | None = None, reason: str | None = None, limit: int = 20
    ) -> list[DeadLetterEntry]:
        """Stored dead letters, newest first."""
        return self._read(lambda repo: repo.dead_letters(since=since, reason=reason, limit=limit))

    def expirations(
        self, *, since: datetime | None = None, system_id: str | None = None, limit: int = 20
    ) -> list[Expired]:
        """Stored expirations, newest first."""
        return self._read(
            lambda repo: repo.expirations(since=since, system_id=system_id, limit=limit)
        )

    def activity(self, since: datetime) -> Activity:
        """Outcomes stored since ``since`` and the diagnoses' end-to-end times."""
        return self._read(lambda repo: repo.activity(since=since))

    def prune(self, before: datetime) -> dict[str, int]:
        """Delete the outcomes stored before ``before``; rows deleted per table."""
        return self._read(lambda repo: repo.prune(before=before))

    def machine(self, name: str) -> MachineVersion | None:
        """The active version of the registered machine ``name`` (None: unknown or retired)."""
        return self._read(lambda repo: active_machine(repo.database, name))

    def close(self) -> None:
        """Dispose of the engine and its loop."""
        if self._open is not None:
            runner, database, _ = self._open
            self._open = None
            runner(database.dispose())
            runner.close()

    def _read(self, query: Callable[[OutcomeRepository], Coroutine[Any, Any, T]]) -> T:
        if self._open is None:
            database = Database(self.settings.database_url, self.settings.database)
            self._open = (LoopRunner(), database, OutcomeRepository(database))
        runner, _, repository = self._open
        try:
            return runner(query(repository))
        except (OperationalError, ProgrammingError) as exc:
            text = str(exc).lower()
            if "no such table" in text or "does not exist" in text:
                raise ConfigurationError(
                    f"database {mask_url(self.settings.database_url)} has no diagnoses yet "
                    "(no migrations applied): run `gnn-service db upgrade` or start a worker"
                ) from None
            raise
