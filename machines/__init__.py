"""Demo machines and a physics-based data generator with fault injection.

Built-in machines (:func:`builtin_names`, :func:`builtin_spec`) ship as YAML; :func:`generate`
simulates one, with faults such as ``pump_internal_leak@6h:exponential``, into a :class:`Run`
of readings and labels; :func:`write_run` / :func:`read_run` store runs in the format training
reads (docs/data-format.md); :func:`windows` cuts a run into :class:`schemas.Snapshot`
payloads for the producer to publish. The CLI (``gnn-service demo``) lives in
:mod:`cli.demo` and is not imported here.
"""

from __future__ import annotations

from machines.catalog import UnknownMachineError, builtin_names, builtin_spec, is_builtin
from machines.durations import DurationError, format_duration, parse_duration
from machines.faults import (
    FAILURE_HEALTH,
    RUL_CAP_HOURS,
    FaultSpec,
    FaultSpecError,
    Progression,
    parse_fault,
)
from machines.generator import GenerationError, generate
from machines.run import Run
from machines.run_io import RunFormatError, read_run, write_run
from machines.windows import windows

__all__ = [
    "FAILURE_HEALTH",
    "RUL_CAP_HOURS",
    "DurationError",
    "FaultSpec",
    "FaultSpecError",
    "GenerationError",
    "Progression",
    "Run",
    "RunFormatError",
    "UnknownMachineError",
    "builtin_names",
    "builtin_spec",
    "format_duration",
    "generate",
    "is_builtin",
    "parse_duration",
    "parse_fault",
    "read_run",
    "windows",
    "write_run",
]
