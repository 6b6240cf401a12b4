"""``gnn-service benchmark db-write``: diagnoses written per second, one bulk statement per
batch (``OutcomeRepository.save_many``) vs one INSERT per diagnosis
(:class:`RowByRowWriter`, the design the bulk statement replaces), on PostgreSQL and on
SQLite (the embedded default), same rows, same run (docs/benchmarks.md, ../BENCHMARKS
"db-write").

Rows are real diagnoses: the bundled model and the worker's ``BatchProcessor`` diagnose a
few windows of each demo machine with its fault developing, once; the benchmark then clones
those diagnoses under unique snapshot ids. Every variant starts from an empty ``diagnoses``
table (migrated first), writes a few warm-up batches, empties the table again, then writes
``batches`` batches of ``batch_size`` rows, each batch in one transaction as the worker does,
and counts the rows in the table afterwards. The clock runs around each write call, from
building the rows to the commit.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from machines.catalog import DEMO_FAULTS, builtin_spec
from machines.generator import generate
from producer.stream import snapshots_of
from schemas import Diagnosis
from schemas.result import Diagnosed
from service.db import schema as tables
from service.db.database import Database, LoopRunner, connected
from service.db.migrate import upgrade
from service.db.repositories import MAX_ROWS_PER_STATEMENT, OutcomeRepository, diagnosis_row
from service.db.urls import prepare_database_url
from service.errors import ConfigurationError, ServiceError
from service.settings import Settings, mask_url
from training.benchmarks.decoded import decoded_incoming
from training.benchmarks.report import result_document
from worker.model_source import ModelSource
from worker.pipeline import BatchProcessor

#: Used when neither ``--database-url`` nor the settings name a PostgreSQL database.
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/gnn_bench"
#: Every snapshot id this benchmark writes starts with it; other rows are never truncated.
ID_PREFIX = "dbbench-"
#: The SQLite file inside ``--sqlite-dir`` (not ``gnn.db``: never the service's own file).
SQLITE_FILE = "db-write.db"
#: Variants: name and the repository method that writes one batch.
VARIANTS = ("per_row", "bulk")

Report = Callable[[str], None]
Writer = Callable[..., Coroutine[Any, Any, int]]
"""``RowByRowWriter.save_each`` or ``OutcomeRepository.save_many``: ``diagnoses=`` a batch."""
Tick = Callable[[str, int, int], None]
"""Told after every timed batch: the variant's label, batches done, batches in all."""


@dataclass(frozen=True)
class DbWriteBenchConfig:
    """Everything that changes the result."""

    batch_size: int = 64
    batches: int = 50
    warmup_batches: int = 3
    windows_per_machine: int = 4
    seed: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_ROWS_PER_STATEMENT:
            # above it the repository splits a batch into several statements
            raise ConfigurationError(
                f"batch size must be 1..{MAX_ROWS_PER_STATEMENT}, got {self.batch_size}"
            )
        if self.batches < 1 or self.warmup_batches < 0 or self.windows_per_machine < 1:
            raise ConfigurationError(
                "batches and windows per machine must be >= 1, warm-up batches >= 0"
            )

    @property
    def rows_per_variant(self) -> int:
        """Rows each variant writes (and finds in its table afterwards)."""
        return self.batch_size * self.batches


def postgres_url_for(settings: Settings, given: str | None) -> str:
    """The PostgreSQL database to measure: ``given``, else the settings' database when it is
    PostgreSQL, else :data:`DEFAULT_POSTGRES_URL`.

    Raises:
        ConfigurationError: ``given`` is not a PostgreSQL URL.
    """
    if given is not None:
        try:
            url = prepare_database_url(given)
        except ConfigurationError as exc:
            # the message names the setting; here the URL came from the command line
            reason = (
                str(exc).replace("GNN_DATABASE__URL is ", "").replace("GNN_DATABASE__URL: ", "")
            )
            raise ConfigurationError(f"--database-url {mask_url(given)!r}: {reason}") from None
        if not url.startswith("postgresql"):
            raise ConfigurationError(
                f"--database-url must name a PostgreSQL database, got {mask_url(given)} "
                "(SQLite is measured in --sqlite-dir)"
            )
        return url
    if settings.database.url is not None and settings.database_url.startswith("postgresql"):
        return prepare_database_url(settings.database_url)
    return DEFAULT_POSTGRES_URL


def run_db_write_benchmark(
    config: DbWriteBenchConfig,
    *,
    settings: Settings,
    postgres_url: str,
    sqlite_dir: Path | None,
    command: str,
    report: Report,
    tick: Tick,
) -> dict[str, Any]:
    """Measure every variant on both databases and return the result document.

    Args:
        config: Sizes and seeds.
        settings: Service settings (pool sizing and retry policy, model, diagnosis rules).
        postgres_url: The PostgreSQL database; its ``diagnoses`` table is emptied.
        sqlite_dir: Where the SQLite file goes; ``None``: a temporary directory, removed
            at the end.
        command: The command line, for the result.
        report: Told what is happening, a line at a time.
        tick: Told after every timed batch.

    Raises:
        ConfigurationError: A database cannot be reached, or holds diagnoses this
            benchmark did not write.
    """
    with contextlib.ExitStack() as stack:
        directory = sqlite_dir
        if directory is None:
            directory = Path(tempfile.mkdtemp(prefix="gnn-dbbench-"))
            stack.callback(shutil.rmtree, directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)
        sqlite_path = (directory / SQLITE_FILE).absolute()
        targets = {
            "postgresql": postgres_url,
            "sqlite": f"sqlite+aiosqlite:///{sqlite_path}",
        }
        opened = {
            name: _prepare(stack, settings, name, url, report) for name, url in targets.items()
        }
        report("diagnosing demo windows with the bundled model")
        templates, model_version = template_diagnoses(settings, config)
        report(f"{len(templates)} template diagnoses ({model_version}); cloning")
        rows = clone(templates, config.rows_per_variant, prefix=ID_PREFIX)
        warmup = clone(
            templates, config.warmup_batches * config.batch_size, prefix=f"{ID_PREFIX}warmup-"
        )
        results: dict[str, dict[str, float]] = {}
        for name, (database, run) in opened.items():
            writers: dict[str, Writer] = {
                "per_row": RowByRowWriter(database).save_each,
                "bulk": OutcomeRepository(database).save_many,
            }
            for variant in VARIANTS:
                label = f"{name}_{variant}"
                results[label] = _measure(
                    label,
                    writers[variant],
                    (database, run),
                    rows=rows,
                    warmup=warmup,
                    config=config,
                    tick=tick,
                )
                report(
                    f"{label}: {results[label]['throughput_rps']:.0f} rows/s, "
                    f"p50 {results[label]['p50_ms']:.2f} ms, p95 {results[label]['p95_ms']:.2f} ms"
                )
        versions = {
            name: _server_version(database, run) for name, (database, run) in opened.items()
        }
    ratios = {
        f"bulk_gain_{name}": results[f"{name}_bulk"]["throughput_rps"]
        / results[f"{name}_per_row"]["throughput_rps"]
        for name in targets
    }
    return result_document(
        "db-write",
        command=command,
        config={
            **asdict(config),
            "rows_per_variant": config.rows_per_variant,
            "model_version": model_version,
            "template_diagnoses": len(templates),
            "systems": sorted({item.system_id for item in templates}),
            "mean_components_per_row": float(np.mean([len(t.components) for t in templates])),
            "mean_diagnosis_json_bytes": float(
                np.mean([len(t.model_dump_json()) for t in templates])
            ),
            "postgresql": {"url": mask_url(postgres_url), "server_version": versions["postgresql"]},
            "sqlite": {
                "path": str(sqlite_path) if sqlite_dir is not None else "temporary directory",
                "version": versions["sqlite"],
                "pragmas": "journal_mode=WAL, synchronous=NORMAL",
            },
            "transaction": "one per batch",
            "stop_clock": "commit of the batch's transaction",
        },
        results=results,
        baselines={f"{name}_per_row": results[f"{name}_per_row"] for name in targets},
        ratios=ratios,
    )


# rows ---------------------------------------------------------------------------------


def template_diagnoses(
    settings: Settings, config: DbWriteBenchConfig
) -> tuple[list[Diagnosis], str]:
    """Diagnoses of ``windows_per_machine`` windows of each demo machine, its fault
    developing across them, made by the bundled model through the worker's batch processor.

    Returns:
        The diagnoses and the model version that made them.
    """
    runner = ModelSource(settings, None).load()
    processor = BatchProcessor(settings=settings, runner=runner, resolve_spec=builtin_spec)
    steps = runner.contract.window_steps
    # The demo faults start at 10 min and fail at 70 min (machine time): spread the windows
    # over that span so that rows carry ok, warning and critical components.
    stride = max(1, 4200 // config.windows_per_machine)
    incoming = []
    for name, fault in DEMO_FAULTS.items():
        run = generate(
            builtin_spec(name),
            duration_s=float(steps + stride * config.windows_per_machine),
            faults=[fault],
            seed=config.seed,
        )
        for snapshot in snapshots_of(
            run,
            window=steps,
            stride=stride,
            count=config.windows_per_machine,
            prefix=f"template-{name}",
            system_id=f"bench-{name}",
        ):
            body = snapshot.model_dump(mode="json")
            incoming.append(decoded_incoming(body, {"id": snapshot.snapshot_id}))
    result = processor.process(incoming)
    diagnoses = [
        item.outcome.diagnosis for item in result.finished if isinstance(item.outcome, Diagnosed)
    ]
    if len(diagnoses) != len(incoming):
        raise ServiceError(
            f"the bundled model diagnosed {len(diagnoses)} of {len(incoming)} demo windows "
            f"({result.error or 'see the dead letters'})"
        )
    return diagnoses, runner.version


def clone(templates: Sequence[Diagnosis], count: int, *, prefix: str) -> list[Diagnosis]:
    """``count`` diagnoses cycling through ``templates``, with snapshot ids
    ``<prefix><n>``."""
    return [
        templates[number % len(templates)].model_copy(
            update={"snapshot_id": f"{prefix}{number:07d}"}
        )
        for number in range(count)
    ]


# writes -------------------------------------------------------------------------------


class RowByRowWriter:
    """The design ``OutcomeRepository.save_many`` replaces: one INSERT per diagnosis, every
    diagnosis of a call in one transaction, retried as the repository retries. The rows and
    the conflict rule are the repository's (:func:`~service.db.repositories.diagnosis_row`;
    a snapshot id stored already is skipped), so both variants store the same rows.

    Args:
        database: The database written to.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        table = tables.diagnoses
        dialect = postgresql if database.dialect == "postgresql" else sqlite
        self._statement = (
            dialect.insert(table)
            .on_conflict_do_nothing(index_elements=["snapshot_id"])
            .returning(table.c.snapshot_id)
        )

    def __repr__(self) -> str:
        return f"RowByRowWriter({self.database!r})"

    async def save_each(self, *, diagnoses: Sequence[Diagnosis]) -> int:
        """Store diagnoses with one INSERT each, in one transaction; returns how many rows
        were new."""
        now = datetime.now(UTC)
        rows = [diagnosis_row(item, now) for item in diagnoses]

        async def write() -> int:
            inserted = 0
            async with self.database.engine.begin() as connection:
                for row in rows:
                    result = await connection.execute(self._statement, [row])
                    inserted += len(set(result.scalars().all()))
            return inserted

        return await self.database.retrying(write, what="row-by-row write")


# databases ----------------------------------------------------------------------------


def _prepare(
    stack: contextlib.ExitStack, settings: Settings, name: str, url: str, report: Report
) -> tuple[Database, LoopRunner]:
    """Open, probe, migrate and check one database before anything slow runs."""
    target = settings.model_copy(
        update={"database": settings.database.model_copy(update={"url": url})}
    )
    database, run = stack.enter_context(connected(target, migrate=False))
    try:
        run(database.ping())
    except Exception as exc:
        raise ConfigurationError(_unusable(name, url, exc)) from exc
    upgrade(url)
    foreign = run(_count(database, foreign_only=True))
    if foreign:
        raise ConfigurationError(
            f"the diagnoses table of {mask_url(url)} holds {foreign} rows this benchmark did "
            f"not write (snapshot ids not starting with {ID_PREFIX!r}); it empties that table, "
            "so point it at a scratch database"
        )
    report(f"{name}: {mask_url(url)} migrated")
    return database, run


def _unusable(name: str, url: str, exc: BaseException) -> str:
    """Why a database cannot be measured, and what to do about it."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    first = first.removeprefix("(sqlalchemy.dialects.postgresql.asyncpg.Error) ")
    if name == "postgresql" and "does not exist" in first:
        parsed = make_url(url)
        return (
            f"postgresql at {mask_url(url)}: {first}; create it with "
            f"psql -h {parsed.host or '127.0.0.1'} -p {parsed.port or 5432} "
            f"-U {parsed.username or 'postgres'} -c 'CREATE DATABASE {parsed.database}', "
            "or pass --database-url"
        )
    hint = "; start PostgreSQL or pass --database-url" if name == "postgresql" else ""
    return f"{name} at {mask_url(url)} is unreachable: {first}{hint}"


def _measure(
    label: str,
    write: Writer,
    opened: tuple[Database, LoopRunner],
    *,
    rows: Sequence[Diagnosis],
    warmup: Sequence[Diagnosis],
    config: DbWriteBenchConfig,
    tick: Tick,
) -> dict[str, float]:
    """One variant: empty table, warm-up batches, empty table, timed batches, row count."""
    database, run = opened
    size = config.batch_size
    run(_truncate(database))
    for start in range(0, len(warmup), size):
        run(write(diagnoses=warmup[start : start + size]))
    run(_truncate(database))
    retries_before = database.retries
    seconds: list[float] = []
    inserted = 0
    for number in range(config.batches):
        batch = rows[number * size : (number + 1) * size]
        started = time.perf_counter()
        inserted += run(write(diagnoses=batch))
        seconds.append(time.perf_counter() - started)
        tick(label, number + 1, config.batches)
    in_table = run(_count(database, foreign_only=False))
    if inserted != len(rows) or in_table != len(rows):
        raise ServiceError(
            f"{label}: wrote {len(rows)} rows, the repository inserted {inserted} and the "
            f"table holds {in_table}"
        )
    latencies_ms = np.array(seconds) * 1000.0
    return {
        "throughput_rps": len(rows) / float(np.sum(seconds)),
        "p50_ms": float(np.percentile(latencies_ms, 50)),
        "p95_ms": float(np.percentile(latencies_ms, 95)),
        "rows_written": in_table,
        "write_s": float(np.sum(seconds)),
        "retries": database.retries - retries_before,
    }


async def _truncate(database: Database) -> None:
    statement = (
        "TRUNCATE TABLE diagnoses RESTART IDENTITY"
        if database.dialect == "postgresql"
        else "DELETE FROM diagnoses"
    )
    async with database.engine.begin() as connection:
        await connection.execute(text(statement))


async def _count(database: Database, *, foreign_only: bool) -> int:
    query = select(func.count()).select_from(tables.diagnoses)
    if foreign_only:
        query = query.where(tables.diagnoses.c.snapshot_id.not_like(f"{ID_PREFIX}%"))
    async with database.engine.connect() as connection:
        return int((await connection.execute(query)).scalar_one())


def _server_version(database: Database, run: LoopRunner) -> str:
    query = "SHOW server_version" if database.dialect == "postgresql" else "SELECT sqlite_version()"

    async def read() -> str:
        async with database.engine.connect() as connection:
            return str((await connection.execute(text(query))).scalar_one())

    return run(read())
