"""OutcomeRepository on SQLite and PostgreSQL: idempotent batch writes and every read."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from machines.catalog import builtin_spec
from schemas import DeadLetter, Diagnosis, Expired
from schemas.diagnosis import ComponentDiagnosis, Contribution, RemainingLife, Timings
from schemas.outcomes import DeadLetterReason
from schemas.result import DeadLettered, Diagnosed, ExpiredOutcome
from service.db import schema as tables
from service.db.database import Database, LoopRunner
from service.db.repositories import MAX_ROWS_PER_STATEMENT, OutcomeRepository, SavedCounts
from service.settings import DatabaseSettings

T0 = datetime(2026, 11, 29, 8, 0, 0, 123456, tzinfo=UTC)
SHA = "ab" * 32


def diagnosis(
    snapshot_id: str,
    *,
    system_id: str = "excavator-7",
    created_at: datetime = T0,
    health: float = 0.82,
    model_version: str = "universal@3",
) -> Diagnosis:
    """A complete diagnosis: two components, one with every optional field set."""
    return Diagnosis(
        snapshot_id=snapshot_id,
        system_id=system_id,
        model_version=model_version,
        created_at=created_at,
        correlation_id=f"req-{snapshot_id}",
        machine_health=health,
        components=[
            ComponentDiagnosis(
                component_id="hydraulic_pump",
                health=0.41,
                status="critical",
                fault="pump_internal_leak",
                fault_probabilities={
                    "normal": 0.1,
                    "pump_internal_leak": 0.85,
                    "valve_stick": 0.05,
                },
                anomaly_score=3.25,
                rul=RemainingLife(hours=12.5, low_hours=6.0, high_hours=30.0),
                top_sensors=[Contribution(id="pump_pressure", score=0.7)],
                top_connections=[Contribution(id="hydraulic_pump->boom_cylinder", score=0.2)],
            ),
            ComponentDiagnosis(component_id="engine", health=0.97, status="ok"),
        ],
        timings=Timings(queue_ms=4.5, batch_wait_ms=12.0, forward_ms=3.25, total_ms=21.0),
        warnings=["sensor boom_angle masked: 3 samples missing"],
    )


def expired(snapshot_id: str, *, deadline: datetime = T0) -> Expired:
    return Expired(
        snapshot_id=snapshot_id,
        system_id="cnc-2",
        deadline=deadline,
        observed_at=deadline + timedelta(seconds=2, microseconds=500),
        correlation_id=f"req-{snapshot_id}",
    )


def dead_letter(
    snapshot_id: str | None,
    reason: DeadLetterReason = DeadLetterReason.SCHEMA_INVALID,
    *,
    received_at: datetime = T0,
) -> DeadLetter:
    return DeadLetter(
        snapshot_id=snapshot_id,
        reason=reason,
        detail=f"window.readings.p2: {reason.value}",
        payload_sha256=SHA,
        received_at=received_at,
    )


@pytest.fixture
def run() -> Iterator[LoopRunner]:
    runner = LoopRunner()
    yield runner
    runner.close()


@pytest.fixture
def database(migrated_database_url: str, run: LoopRunner) -> Iterator[Database]:
    database = Database(migrated_database_url, DatabaseSettings())
    yield database
    run(database.dispose())


@pytest.fixture
def repository(database: Database) -> OutcomeRepository:
    return OutcomeRepository(database)


def _counts(run: LoopRunner, repository: OutcomeRepository) -> dict[str, int]:
    return {
        table: run(repository.count(table=table))
        for table in ("diagnoses", "expirations", "dead_letters", "systems")
    }


def _ids(items: Sequence[Diagnosis]) -> list[str]:
    return [item.snapshot_id for item in items]


def test_a_batch_stores_every_kind_of_outcome_and_counts_the_new_rows(
    run: LoopRunner, repository: OutcomeRepository
) -> None:
    counts = run(
        repository.save_batch(
            diagnoses=[diagnosis("s1"), diagnosis("s2"), diagnosis("s3", system_id="cnc-2")],
            expired=[expired("s4"), expired("s5")],
            dead_letters=[("task-1", dead_letter("s6")), ("sha-2", dead_letter(None))],
            specs={"excavator-7": builtin_spec("excavator"), "cnc-2": builtin_spec("cnc_machine")},
        )
    )
    assert counts == SavedCounts(diagnoses=3, expired=2, dead_letters=2, systems=2)
    assert _counts(run, repository) == {
        "diagnoses": 3,
        "expirations": 2,
        "dead_letters": 2,
        "systems": 2,
    }


def test_saving_a_batch_again_adds_no_rows(
    run: LoopRunner, database: Database, repository: OutcomeRepository
) -> None:
    batch: dict[str, Any] = {
        "diagnoses": [diagnosis("s1"), diagnosis("s2")],
        "expired": [expired("s3")],
        "dead_letters": [("task-1", dead_letter("s4"))],
        "specs": {"excavator-7": builtin_spec("excavator")},
    }
    first = run(repository.save_batch(**batch))
    assert first == SavedCounts(diagnoses=2, expired=1, dead_letters=1, systems=1)
    # A redelivery handled by another process: its repository knows no systems yet.
    again = run(OutcomeRepository(database).save_batch(**batch))
    every_key = frozenset({"s1", "s2", "s3", "task-1"})
    assert again == SavedCounts(taken=every_key)
    assert run(repository.save_batch(**batch)) == SavedCounts(taken=every_key)
    assert _counts(run, repository) == {
        "diagnoses": 2,
        "expirations": 1,
        "dead_letters": 1,
        "systems": 1,
    }


def test_an_id_twice_in_one_batch_is_stored_once_and_the_first_one_wins(
    run: LoopRunner, repository: OutcomeRepository
) -> None:
    first, second = diagnosis("dup", health=0.9), diagnosis("dup", health=0.1)
    counts = run(
        repository.save_batch(
            diagnoses=[first, second],
            expired=[expired("late"), expired("late", deadline=T0 + timedelta(hours=1))],
            dead_letters=[
                ("task-1", dead_letter("x")),
                ("task-1", dead_letter("x", DeadLetterReason.OVERSIZE)),
            ],
        )
    )
    assert counts == SavedCounts(diagnoses=1, expired=1, dead_letters=1)
    assert run(repository.get_by_snapshot(snapshot_id="dup")) == first
    assert run(repository.get_expired(snapshot_id="late")) == expired("late")
    assert [e.record.reason for e in run(repository.dead_letters())] == ["schema_invalid"]
    assert run(repository.save_many(diagnoses=[first, second])) == 0
    assert _counts(run, repository)["diagnoses"] == 1


def test_an_id_has_one_outcome_of_one_kind_and_later_ones_read_it_back(
    run: LoopRunner, repository: OutcomeRepository
) -> None:
    first = run(repository.save_batch(diagnoses=[diagnosis("k1")], expired=[expired("k2")]))
    assert first.taken == frozenset()
    later = run(
        repository.save_batch(
            expired=[expired("k1")],
            dead_letters=[("k2", dead_letter("k2")), ("k3", dead_letter("k3"))],
        )
    )
    assert later == SavedCounts(dead_letters=1, taken=frozenset({"k1", "k2"}))
    stored = run(repository.stored_outcomes(keys=later.taken))
    assert stored["k1"] == Diagnosed(diagnosis=diagnosis("k1"))
    assert stored["k2"] == ExpiredOutcome(expired=expired("k2"))
    assert run(repository.stored_outcomes(keys={"k3", "nowhere"})) == {
        "k3": DeadLettered(dead_letter=dead_letter("k3"))
    }
    assert _counts(run, repository) | {"outcomes": run(repository.count(table="outcomes"))} == {
        "diagnoses": 1,
        "expirations": 1,
        "dead_letters": 1,
        "systems": 0,
        "outcomes": 3,
    }


def test_a_batch_that_fails_part_way_stores_nothing(
    run: LoopRunner, repository: OutcomeRepository
) -> None:
    # The dead letters are written last; a message key of NULL violates NOT NULL.
    broken = cast(str, None)
    with pytest.raises(IntegrityError, match=r"(?i)null"):
        run(
            repository.save_batch(
                diagnoses=[diagnosis("s1")],
                expired=[expired("s2")],
                dead_letters=[(broken, dead_letter("s3"))],
                specs={"excavator-7": builtin_spec("excavator")},
            )
        )
    assert set(_counts(run, repository).values()) == {0}
    assert repository.database.retries == 0
    # The system was not stored, so it is not remembered as known either.
    counts = run(
        repository.save_batch(
            diagnoses=[diagnosis("s1")], specs={"excavator-7": builtin_spec("excavator")}
        )
    )
    assert counts == SavedCounts(diagnoses=1, systems=1)


def test_a_stored_diagnosis_reads_back_equal_to_the_original(
    run: LoopRunner, repository: OutcomeRepository
) -> None:
    original = diagnosis("s1")
    minimal = Diagnosis(
        snapshot_id="s2",
        system_id="excavator-7",
        model_version="bundled",
        created_at=T0,
        machine_health=1.0,
        components=[],
    )
    run(repository.save_batch(diagnoses=[original, minimal]))
    assert run(repository.get_by_snapshot(snapshot_id="s1")) == original
    assert run(repository.get_by_snapshot(snapshot_id="s2")) == minimal
    assert run(repository.get_by_snapshot(snapshot_id="unknown")) is None


def test_the_summary_columns_name_the_worst_component(
    run: LoopRunner, database: Database, repository: OutcomeRepository
) -> None:
    run(repository.save_batch(diagnoses=[diagnosis("s1")]))

    async def summary() -> Any:
        async with database.engine.connect() as connection:
            query = select(tables.diagnoses.c.status, tables.diagnoses.c.top_fault)
            return (await connection.execute(query)).one()

    assert tuple(run(summary())) == ("critical", "pump_internal_leak")


def test_moments_with_a_utc_offset_read_back_as_the_same_instant(
    run: LoopRunner, repository: OutcomeRepository
) -> None:
    berlin = timezone(timedelta(hours=2))
    created = datetime(2026, 6, 1, 12, 0, 0, 250000, tzinfo=berlin)  # 10:00 UTC
    original = diagnosis("s1", created_at=created)
    late = expired("s2", deadline=created)
    letter = dead_letter("s3", received_at=created)
    run(repository.save_batch(diagnoses=[original], expired=[late], dead_letters=[("k", letter)]))

    stored = run(repository.get_by_snapshot(snapshot_id="s1"))
    assert stored is not None
    assert stored.created_at == created
    assert stored.created_at.utcoffset() is not None
    assert run(repository.get_expired(snapshot_id="s2")) == late
    assert run(repository.dead_letters())[0].record == letter
    # ``since`` is an instant too: 11:00+02:00 is before the diagnosis, 13:00+02:00 after.
    before = datetime(2026, 6, 1, 11, 0, tzinfo=berlin)
    after = datetime(2026, 6, 1, 13, 0, tzinfo=berlin)
    assert _ids(run(repository.history(system_id="excavator-7", since=before))) == ["s1"]
    assert run(repository.history(system_id="excavator-7", since=after)) == []


def test_history_is_newest_first_and_honours_since_and_limit(
    run: LoopRunner, repository: OutcomeRepository
) -> None:
    made = [diagnosis(f"a{i}", created_at=T0 + timedelta(minutes=i)) for i in range(5)]
    shuffled = made[:]
    random.Random(3).shuffle(shuffled)
    for item in shuffled:  # stored out of order, as concurrent workers would
        run(repository.save_batch(diagnoses=[item]))
    run(repository.save_batch(diagnoses=[diagnosis("b0", system_id="cnc-2")]))

    assert _ids(run(repository.history(system_id="excavator-7"))) == ["a4", "a3", "a2", "a1", "a0"]
    since = T0 + timedelta(minutes=2)
    assert _ids(run(repository.history(system_id="excavator-7", since=since))) == ["a4", "a3", "a2"]
    assert _ids(run(repository.history(system_id="excavator-7", limit=2))) == ["a4", "a3"]
    assert _ids(run(repository.history(system_id="excavator-7", since=since, limit=1))) == ["a4"]
    assert run(repository.history(system_id="excavator-7")) == sorted(
        made, key=lambda item: item.created_at, reverse=True
    )
    assert run(repository.history(system_id="unknown")) == []


def test_latest_is_the_newest_diagnosis_of_a_system(
    run: LoopRunner, repository: OutcomeRepository
) -> None:
    newest = diagnosis("new", created_at=T0 + timedelta(hours=1))
    run(repository.save_batch(diagnoses=[newest]))
    run(repository.save_batch(diagnoses=[diagnosis("old", created_at=T0)]))  # stored later
    run(repository.save_batch(diagnoses=[diagnosis("other", system_id="cnc-2")]))
    assert run(repository.latest(system_id="excavator-7")) == newest
    assert run(repository.latest(system_id="unknown")) is None


def test_latest_per_system_is_each_systems_newest_diagnosis_by_system_id(
    run: LoopRunner, repository: OutcomeRepository
) -> None:
    hour = timedelta(hours=1)
    run(
        repository.save_batch(
            diagnoses=[
                diagnosis("r1", system_id="robot-1", created_at=T0 + 2 * hour),
                diagnosis("e1", system_id="excavator-7", created_at=T0 + hour),
                diagnosis("c1", system_id="cnc-2", created_at=T0),
            ]
        )
    )
    # Stored later but older: a redelivered or slow batch must not become the newest.
    run(
        repository.save_batch(
            diagnoses=[
                diagnosis("r0", system_id="robot-1", created_at=T0),
                diagnosis("c2", system_id="cnc-2", created_at=T0 + 3 * hour),
            ]
        )
    )
    latest = run(repository.latest_per_system())
    assert [(item.system_id, item.snapshot_id) for item in latest] == [
        ("cnc-2", "c2"),
        ("excavator-7", "e1"),
        ("robot-1", "r1"),
    ]
    for item in latest:
        assert run(repository.latest(system_id=item.system_id)) == item
    assert _ids(run(repository.latest_per_system(limit=2))) == ["c2", "e1"]


def test_latest_per_system_of_an_empty_database_is_empty(
    run: LoopRunner, repository: OutcomeRepository
) -> None:
    assert run(repository.latest_per_system()) == []


def test_an_expired_snapshot_reads_back_equal_to_the_record(
    run: LoopRunner, repository: OutcomeRepository
) -> None:
    record = expired("s1")
    run(repository.save_batch(expired=[record]))
    assert run(repository.get_expired(snapshot_id="s1")) == record
    assert run(repository.get_expired(snapshot_id="s2")) is None
    assert run(repository.get_by_snapshot(snapshot_id="s1")) is None


def test_dead_letters_are_newest_first_and_filtered_by_reason_since_and_limit(
    run: LoopRunner, repository: OutcomeRepository
) -> None:
    reasons = [
        DeadLetterReason.SCHEMA_INVALID,
        DeadLetterReason.OVERSIZE,
        DeadLetterReason.SCHEMA_INVALID,
        DeadLetterReason.UNKNOWN_SPEC,
    ]
    letters = [(f"task-{i}", dead_letter(f"s{i}", reason)) for i, reason in enumerate(reasons)]
    for key, letter in letters:
        run(repository.save_batch(dead_letters=[(key, letter)]))

    everything = run(repository.dead_letters())
    assert [entry.message_key for entry in everything] == ["task-3", "task-2", "task-1", "task-0"]
    assert [(e.message_key, e.record) for e in reversed(everything)] == letters
    assert all(entry.stored_at.tzinfo is not None for entry in everything)
    schema_invalid = run(repository.dead_letters(reason="schema_invalid"))
    assert [entry.message_key for entry in schema_invalid] == ["task-2", "task-0"]
    assert run(repository.dead_letters(reason="ragged_window")) == []
    assert [e.message_key for e in run(repository.dead_letters(limit=1))] == ["task-3"]
    later = run(repository.dead_letters(since=everything[0].stored_at + timedelta(seconds=1)))
    assert later == []
    since_first = run(repository.dead_letters(since=everything[-1].stored_at))
    assert len(since_first) == 4


def test_a_system_is_registered_once_with_its_spec_name(
    run: LoopRunner, database: Database, repository: OutcomeRepository
) -> None:
    specs = {"excavator-7": builtin_spec("excavator"), "cnc-2": builtin_spec("cnc_machine")}
    assert run(repository.save_batch(diagnoses=[diagnosis("s1")], specs=specs)).systems == 2
    assert run(repository.save_batch(diagnoses=[diagnosis("s2")], specs=specs)).systems == 0
    fresh = OutcomeRepository(database)  # another process: no cache, the table decides
    assert run(fresh.save_batch(diagnoses=[diagnosis("s3")], specs=specs)).systems == 0
    assert run(repository.systems()) == [("cnc-2", "cnc_machine"), ("excavator-7", "excavator")]


def test_a_call_with_more_rows_than_one_statement_takes_stores_them_all(
    run: LoopRunner, repository: OutcomeRepository
) -> None:
    total = 2500
    assert total > 2 * MAX_ROWS_PER_STATEMENT  # three statements per table
    diagnoses = [diagnosis(f"s{i:05d}", created_at=T0 + timedelta(seconds=i)) for i in range(total)]
    records = [expired(f"e{i:05d}") for i in range(total)]
    letters = [(f"task-{i:05d}", dead_letter(f"d{i:05d}")) for i in range(total)]
    batch: dict[str, Any] = {"diagnoses": diagnoses, "expired": records, "dead_letters": letters}
    assert run(repository.save_batch(**batch)) == SavedCounts(
        diagnoses=total, expired=total, dead_letters=total
    )
    again = run(repository.save_batch(**batch))
    assert again.as_tables() == SavedCounts().as_tables()
    assert len(again.taken) == 3 * total
    assert run(repository.save_many(diagnoses=[*diagnoses[-5:], diagnosis("one-more")])) == 1
    counts = _counts(run, repository)
    assert (counts["diagnoses"], counts["expirations"], counts["dead_letters"]) == (
        total + 1,
        total,
        total,
    )
    newest = run(repository.history(system_id="excavator-7", limit=3))
    assert _ids(newest) == ["s02499", "s02498", "s02497"]
    assert run(repository.get_by_snapshot(snapshot_id="s01000")) == diagnoses[1000]


def test_prune_deletes_outcomes_stored_before_a_moment_and_frees_their_keys(
    run: LoopRunner, repository: OutcomeRepository
) -> None:
    run(
        repository.save_batch(
            diagnoses=[diagnosis("p1"), diagnosis("p2")],
            expired=[expired("p3")],
            dead_letters=[("task-p4", dead_letter("p4"))],
            specs={"excavator-7": builtin_spec("excavator")},
        )
    )
    earlier = datetime.now(UTC) - timedelta(days=1)
    assert run(repository.prune(before=earlier)) == {
        "diagnoses": 0, "expirations": 0, "dead_letters": 0, "outcomes": 0,
    }  # fmt: skip
    later = datetime.now(UTC) + timedelta(seconds=1)
    # Every kind is aged by when its key was stored (an expiry observed long ago included).
    assert run(repository.prune(before=later)) == {
        "diagnoses": 2, "expirations": 1, "dead_letters": 1, "outcomes": 4,
    }  # fmt: skip
    assert _counts(run, repository) == {
        "diagnoses": 0, "expirations": 0, "dead_letters": 0, "systems": 1,
    }  # fmt: skip
    again = run(repository.save_batch(diagnoses=[diagnosis("p1")]))
    assert again.diagnoses == 1  # its key was freed: stored afresh
