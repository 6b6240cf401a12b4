"""What an import kept, dropped and why, per run and column (``import-report.json``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

REPORT_NAME: Final = "import-report.json"
"""File name of the report, in the output folder."""

SensorStatus = Literal["kept", "missing"]
RunStatus = Literal["written", "dropped"]


@dataclass(frozen=True)
class SensorReport:
    """One spec sensor in one run.

    Attributes:
        sensor: Sensor id.
        column: The file's column it was read from; None when the run has none (``missing``:
            every step NaN).
        status: ``kept`` or ``missing``.
        missing_steps: Steps without a value (after resampling).
        gaps: Runs of consecutive missing steps.
        longest_gap_s: Longest of them, seconds.
        constant: Every value present is the same.
        all_missing: No value at all (a column of empty cells, or no column).
        infinite_values: Infinite values read as missing.
    """

    sensor: str
    column: str | None
    status: SensorStatus
    missing_steps: int
    gaps: int
    longest_gap_s: float
    constant: bool
    all_missing: bool
    infinite_values: int = 0


@dataclass(frozen=True)
class LabelSummary:
    """The labels a run received.

    Attributes:
        rows: The labels table's rows for the run: line, kind and fields.
        healthy_reference: No row names the run: every component healthy throughout.
        faulty_steps: Steps with a fault on some component.
        unknown_health_steps: Steps where some component's health is unknown.
        unknown_fault_steps: Steps where some component's fault is unknown.
        unknown_rul_steps: Steps where some component's remaining life is unknown.
        notes: Rows that label no step of the run (their times lie beyond its end).
    """

    rows: list[dict[str, Any]]
    healthy_reference: bool
    faulty_steps: int
    unknown_health_steps: int
    unknown_fault_steps: int
    unknown_rul_steps: int
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunReport:
    """One run.

    Attributes:
        run: Run id.
        source: The file it came from.
        rows: Rows it had there.
        status: ``written`` or ``dropped``.
        reason: Why it was dropped.
        output: The run file written.
        start: Wall-clock time of its first step (ISO 8601).
        duration_s: Steps over the sample rate.
        sample_rate_hz: Its grid's rate.
        rate_inferred: The rate came from the times (median interval).
        steps: Steps of its grid.
        empty_steps: Steps no row fell in (every sensor missing there).
        merged_rows: Rows averaged with another of the same step.
        sensors: Every spec sensor, in spec order.
        ignored_columns: Columns of the file that are no spec sensor's.
        labels: The labels it received.
    """

    run: str
    source: str
    rows: int
    status: RunStatus
    reason: str | None
    output: str | None
    start: str
    duration_s: float
    sample_rate_hz: float
    rate_inferred: bool
    steps: int
    empty_steps: int
    merged_rows: int
    sensors: list[SensorReport]
    ignored_columns: list[str]
    labels: LabelSummary

    @property
    def missing_sensors(self) -> list[str]:
        """Spec sensors the file has no column for."""
        return [item.sensor for item in self.sensors if item.status == "missing"]

    @property
    def constant_sensors(self) -> list[str]:
        """Sensors whose every value is the same."""
        return [item.sensor for item in self.sensors if item.constant]

    @property
    def all_missing_sensors(self) -> list[str]:
        """Sensors with a column but no value in it."""
        return [item.sensor for item in self.sensors if item.all_missing and item.column]

    @property
    def gappy_sensors(self) -> list[str]:
        """Sensors with a column and at least one missing step."""
        return [item.sensor for item in self.sensors if item.gaps and item.column]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready, with the lists of :attr:`missing_sensors` and the others."""
        return {
            **asdict(self),
            "missing_sensors": self.missing_sensors,
            "constant_sensors": self.constant_sensors,
            "all_missing_sensors": self.all_missing_sensors,
        }


@dataclass(frozen=True)
class ImportReport:
    """A whole import.

    Attributes:
        system: The machine's name.
        out_dir: Where the run files went.
        file_format: ``parquet`` or ``csv``.
        min_duration_s: Shorter runs were dropped (None: none was).
        labels_file: The labels table, if one was given.
        columns_file: The column mapping, if one was given.
        runs: Every run found, written or dropped.
        unused_label_runs: Runs the labels table names that no recording holds.
    """

    system: str
    out_dir: str
    file_format: str
    min_duration_s: float | None
    labels_file: str | None
    columns_file: str | None
    runs: list[RunReport]
    unused_label_runs: list[str]

    @property
    def written(self) -> list[RunReport]:
        """The runs written."""
        return [run for run in self.runs if run.status == "written"]

    @property
    def dropped(self) -> list[RunReport]:
        """The runs dropped."""
        return [run for run in self.runs if run.status == "dropped"]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: the settings, a summary and every run."""
        return {
            "system": self.system,
            "out_dir": self.out_dir,
            "format": self.file_format,
            "min_duration_s": self.min_duration_s,
            "labels_file": self.labels_file,
            "columns_file": self.columns_file,
            "summary": {
                "runs": len(self.runs),
                "written": len(self.written),
                "dropped": len(self.dropped),
                "healthy_reference_runs": sum(run.labels.healthy_reference for run in self.runs),
                "unused_label_runs": self.unused_label_runs,
            },
            "runs": [run.to_json() for run in self.runs],
        }

    def write(self, path: Path) -> Path:
        """Write :meth:`to_json` to ``path``; returns it."""
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        return path
