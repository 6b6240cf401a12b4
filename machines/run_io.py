"""Reading and writing runs as Parquet or CSV, in the one format training reads.

Columns, in order: ``t_s`` (float64 seconds since the start), one float32 column per sensor
id (null = missing sample), then per component ``health.<id>`` (float32),
``fault.<id>`` (string, ``normal`` or a fault id) and ``rul_h.<id>`` (float32 hours); in a
label column null means unknown (format version 2; version 1 files, still read, have none).
Metadata is one JSON object (see :func:`run_metadata`): in Parquet under the schema
key-value key ``gnn_service.run``; in CSV on the first line, ``# gnn-service-run <json>``,
before the header row. docs/data-format.md documents the format for other readers.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from machines.faults import FAILURE_HEALTH, RUL_CAP_HOURS, parse_fault
from machines.labels import UNKNOWN_FAULT_CODE, RecordedLabel
from machines.run import Run
from schemas import SpecError, parse_spec

RUN_FORMAT: Final = "gnn-service-run"
"""Value of the metadata's ``format`` field."""

RUN_FORMAT_VERSION: Final = 2
"""Version of the run file format written (2: labels may be unknown, recorded runs)."""

READABLE_VERSIONS: Final = (1, 2)
"""Versions :func:`read_run` reads."""

PARQUET_METADATA_KEY: Final = b"gnn_service.run"
"""Parquet schema metadata key holding the run's JSON metadata."""

CSV_PREFIX: Final = f"# {RUN_FORMAT} "
"""Start of a CSV run file's first line; the rest of the line is the JSON metadata."""


class RunFormatError(ValueError):
    """A file is not a run in the documented format."""


def run_metadata(run: Run) -> dict[str, Any]:
    """The JSON metadata stored with a run.

    Keys: ``format``, ``format_version``, ``system``, ``seed``, ``sample_rate_hz``,
    ``start`` (ISO 8601), ``faults`` (fault strings, :func:`~machines.faults.parse_fault`
    syntax), ``fault_vocabulary``, ``sensor_ids``, ``component_ids``, ``failure_health``,
    ``rul_cap_hours``, ``spec`` (the full SystemSpec, so a file is self-contained), and
    since version 2 ``source`` (``simulated`` or ``recorded``), ``run_id`` (null when
    simulated) and ``labels`` (a recorded run's label rows).
    """
    return {
        "format": RUN_FORMAT,
        "format_version": RUN_FORMAT_VERSION,
        "system": run.system,
        "seed": run.seed,
        "sample_rate_hz": run.sample_rate_hz,
        "start": run.start.isoformat(),
        "faults": [str(fault) for fault in run.faults],
        "fault_vocabulary": list(run.fault_vocabulary),
        "sensor_ids": list(run.sensor_ids),
        "component_ids": list(run.component_ids),
        "failure_health": FAILURE_HEALTH,
        "rul_cap_hours": RUL_CAP_HOURS,
        "spec": run.spec.model_dump(mode="json"),
        "source": "recorded" if run.recorded else "simulated",
        "run_id": run.run_id,
        "labels": [label.to_json() for label in run.labels],
    }


def _table(run: Run, *, dictionary_faults: bool) -> pa.Table:
    columns: dict[str, pa.Array] = {"t_s": pa.array(run.t_s, type=pa.float64())}
    for index, sensor_id in enumerate(run.sensor_ids):
        values = run.readings[:, index]
        columns[sensor_id] = _nullable(values)
    vocabulary = pa.array(run.fault_vocabulary, type=pa.string())
    for index, component_id in enumerate(run.component_ids):
        columns[f"health.{component_id}"] = _nullable(run.health[:, index])
        unknown = run.fault_codes[:, index] == UNKNOWN_FAULT_CODE
        codes = pa.array(run.fault_codes[:, index], type=pa.int16(), mask=unknown)
        faults = pa.DictionaryArray.from_arrays(codes, vocabulary)
        columns[f"fault.{component_id}"] = faults if dictionary_faults else faults.cast(pa.string())
        columns[f"rul_h.{component_id}"] = _nullable(run.rul_hours[:, index])
    return pa.table(columns)


def _nullable(values: np.ndarray[Any, np.dtype[np.float32]]) -> pa.Array:
    """float32 with NaN written as null: a missing sample, or an unknown label."""
    return pa.array(values, type=pa.float32(), mask=np.isnan(values))


def write_run(run: Run, path: str | Path) -> Path:
    """Write a run to ``.parquet`` or ``.csv`` (chosen by suffix).

    Returns:
        The path written.

    Raises:
        RunFormatError: The suffix is neither ``.parquet`` nor ``.csv``.
    """
    target = Path(path)
    metadata = json.dumps(run_metadata(run), separators=(",", ":"))
    suffix = target.suffix.lower()
    if suffix == ".parquet":
        table = _table(run, dictionary_faults=True)
        table = table.replace_schema_metadata({PARQUET_METADATA_KEY: metadata.encode()})
        pq.write_table(table, target, compression="zstd")
    elif suffix == ".csv":
        table = _table(run, dictionary_faults=False)
        with target.open("wb") as handle:
            handle.write(f"{CSV_PREFIX}{metadata}\n".encode())
            # Column names are plain ids; writing the header ourselves keeps it unquoted.
            handle.write((",".join(table.column_names) + "\n").encode())
            options = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
            pa_csv.write_csv(table, handle, write_options=options)
    else:
        raise RunFormatError(
            f"{target}: unsupported run file type {suffix!r}; use .parquet or .csv"
        )
    return target


def read_run(path: str | Path) -> Run:
    """Read a run written by :func:`write_run` (or any file in the documented format).

    Raises:
        RunFormatError: The file is missing, of another type, lacks the metadata, or its
            columns disagree with the metadata.
    """
    source = Path(path)
    suffix = source.suffix.lower()
    try:
        if suffix == ".parquet":
            table = pq.read_table(source)
            raw = (table.schema.metadata or {}).get(PARQUET_METADATA_KEY)
            if raw is None:
                raise RunFormatError(f"{source}: no {PARQUET_METADATA_KEY.decode()} metadata")
            metadata = json.loads(raw)
        elif suffix == ".csv":
            with source.open("rb") as handle:
                first = handle.readline().decode("utf-8")
                if not first.startswith(CSV_PREFIX):
                    raise RunFormatError(f"{source}: first line must start with {CSV_PREFIX!r}")
                metadata = json.loads(first[len(CSV_PREFIX) :])
                # Only empty fields are null: a fault id is never read as a missing value.
                options = pa_csv.ConvertOptions(
                    column_types=_csv_types(metadata), null_values=[""], strings_can_be_null=True
                )
                table = pa_csv.read_csv(handle, convert_options=options)
        else:
            raise RunFormatError(f"{source}: unsupported run file type {suffix!r}")
    except (OSError, pa.ArrowException, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunFormatError(f"{source}: cannot read run: {exc}") from None
    return _run_from(table, metadata, source)


def _csv_types(metadata: dict[str, Any]) -> dict[str, pa.DataType]:
    types: dict[str, pa.DataType] = {"t_s": pa.float64()}
    types.update({sensor_id: pa.float32() for sensor_id in metadata.get("sensor_ids", [])})
    for component_id in metadata.get("component_ids", []):
        types[f"health.{component_id}"] = pa.float32()
        types[f"fault.{component_id}"] = pa.string()
        types[f"rul_h.{component_id}"] = pa.float32()
    return types


def _codes(
    table: pa.Table, name: str, vocabulary: pa.Array, *, nullable: bool
) -> np.ndarray[Any, np.dtype[np.int16]]:
    labels = table.column(name).cast(pa.string())
    codes = pc.index_in(labels, value_set=vocabulary)
    strays = pc.and_(pc.is_null(codes), pc.is_valid(labels))
    if pc.any(strays).as_py():
        unknown = pc.filter(labels, strays)[0]
        raise RunFormatError(f"column {name}: unknown fault label {unknown.as_py()!r}")
    if labels.null_count and not nullable:
        raise RunFormatError(f"column {name}: an empty fault label (allowed from version 2)")
    filled = pc.fill_null(codes, UNKNOWN_FAULT_CODE)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.int16)


def _run_from(table: pa.Table, metadata: dict[str, Any], source: Path) -> Run:
    version = metadata.get("format_version")
    if metadata.get("format") != RUN_FORMAT or version not in READABLE_VERSIONS:
        readable = " or ".join(str(number) for number in READABLE_VERSIONS)
        raise RunFormatError(
            f"{source}: expected format {RUN_FORMAT} version {readable}, got "
            f"{metadata.get('format')} version {version}"
        )
    try:
        spec = parse_spec(metadata["spec"])
        faults = tuple(parse_fault(text, spec.fault_ids) for text in metadata["faults"])
        start = datetime.fromisoformat(metadata["start"])
        expected = ["t_s", *spec.sensor_ids]
        for component_id in spec.component_ids:
            expected += [f"health.{component_id}", f"fault.{component_id}", f"rul_h.{component_id}"]
        if table.column_names != expected:
            raise RunFormatError(f"{source}: columns do not match the spec in the metadata")
        vocabulary = pa.array(["normal", *spec.fault_ids], type=pa.string())

        def floats(name: str) -> np.ndarray[Any, np.dtype[np.float32]]:
            column = table.column(name).cast(pa.float32())
            return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float32)

        readings = np.stack([floats(sid) for sid in spec.sensor_ids], axis=1)
        health = np.stack([floats(f"health.{cid}") for cid in spec.component_ids], axis=1)
        rul = np.stack([floats(f"rul_h.{cid}") for cid in spec.component_ids], axis=1)
        codes = np.stack(
            [
                _codes(table, f"fault.{cid}", vocabulary, nullable=version >= 2)
                for cid in spec.component_ids
            ],
            axis=1,
        )
        run_id = metadata.get("run_id")
        if run_id is not None and not isinstance(run_id, str):
            raise RunFormatError(f"{source}: run_id must be a string or null, got {run_id!r}")
        labels = tuple(RecordedLabel.from_json(row) for row in metadata.get("labels", []))
        return Run(
            spec=spec,
            seed=int(metadata["seed"]),
            sample_rate_hz=float(metadata["sample_rate_hz"]),
            start=start,
            faults=faults,
            t_s=table.column("t_s").to_numpy().astype(np.float64),
            readings=readings.reshape(table.num_rows, len(spec.sensor_ids)),
            health=health.reshape(table.num_rows, len(spec.component_ids)),
            fault_codes=codes.reshape(table.num_rows, len(spec.component_ids)),
            rul_hours=rul.reshape(table.num_rows, len(spec.component_ids)),
            run_id=run_id,
            labels=labels,
        )
    except (KeyError, TypeError, ValueError, SpecError) as exc:
        if isinstance(exc, RunFormatError):
            raise
        raise RunFormatError(f"{source}: invalid run metadata or labels: {exc}") from None
