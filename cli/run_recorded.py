"""``gnn-service run --machine spec.yaml --data runs/``: a user's machine and recorded runs
streamed through the queue as the demo machines are.

The machine is registered in the machine registry (a spec already registered changes
nothing); each run file (``gnn-service import`` writes them) becomes one machine instance
whose snapshots name the machine, cut in windows as long as the window of the model that
serves it (the model routed to the machine, else the fallback), so that the workers
resolve the machine from the registry and diagnose it with its own model.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from cli.demo_run import StreamedMachine
from machines.run_io import read_run
from producer.stream import run_prefix, snapshots_of
from schemas import SystemSpec
from service.db.machines import open_machines
from service.settings import Settings
from worker.model.loader import read_manifest
from worker.model.registry import resolve_model
from worker.model_router import route, routes_of
from worker.model_store import open_registry

#: Run files ``--data`` folders are searched for.
RUN_SUFFIXES = (".parquet", ".csv")


class RecordedRunsError(ValueError):
    """``--data`` holds nothing that can be streamed for ``--machine``."""


def run_files(paths: list[Path]) -> list[Path]:
    """The run files of ``paths``: files as given, folders' ``*.parquet`` and ``*.csv``."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix in RUN_SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            raise RecordedRunsError(f"--data {path}: no such file or folder")
    if not found:
        raise RecordedRunsError(
            f"--data {', '.join(map(str, paths))}: no run files (.parquet or .csv; "
            "gnn-service import writes them)"
        )
    return found


def serving_model(settings: Settings, machine: str) -> tuple[str, float, int]:
    """The model that diagnoses ``machine`` now: ``name:version``, its rate and window steps."""
    with open_registry(settings) as registry:
        fallback = settings.model.name
        name = route(machine, routes_of(registry.active_versions(), fallback), fallback)
        resolved = resolve_model(registry, name)
    contract = read_manifest(resolved.path)["contract"]
    rate_hz, steps = float(contract["sample_rate_hz"]), int(contract["window_steps"])
    return f"{name}:{resolved.version}", rate_hz, steps


def recorded_machines(
    settings: Settings, spec: SystemSpec, data: list[Path], console: Console
) -> list[StreamedMachine]:
    """Register ``spec`` and cut every run of ``data`` into snapshots naming it.

    Raises:
        RecordedRunsError: No run file, a run of another machine, or no run long enough
            for one window.
    """
    files = run_files(data)
    with open_machines(settings) as machines:
        item, created = machines.register(spec)
    state = "registered as version" if created else "already registered, version"
    model, rate_hz, steps = serving_model(settings, spec.name)
    console.print(f"machine {spec.name} {state} {item.version}; served by model {model}")
    prefix = run_prefix()
    streamed: list[StreamedMachine] = []
    skipped: list[str] = []
    with console.status(f"cutting {len(files)} run file(s) into windows"):
        for path in files:
            run = read_run(path)
            unknown = sorted({s.id for s in run.spec.sensors} - set(spec.sensor_index))
            if unknown:
                raise RecordedRunsError(
                    f"{path}: sensors {', '.join(unknown)} are not in machine {spec.name}'s spec"
                )
            window = max(2, round(steps / rate_hz * run.sample_rate_hz))
            if run.steps < window:
                skipped.append(f"{path.name} ({run.steps} steps < {window})")
                continue
            name = run.run_id or path.stem
            cut = snapshots_of(
                run, window=window, stride=window, count=None, prefix=f"{prefix}-{name}",
                system_id=name,
            )  # fmt: skip
            named = [snapshot.model_copy(update={"spec": spec.name}) for snapshot in cut]
            streamed.append(StreamedMachine(spec.name, name, named))
    if skipped:
        console.print("shorter than one window, not streamed: " + ", ".join(skipped))
    if not streamed:
        raise RecordedRunsError(f"no run of --data is as long as one window of model {model}")
    total = sum(len(machine.snapshots) for machine in streamed)
    console.print(f"{len(streamed)} run(s), {total} windows of {steps / rate_hz:g} s each")
    return streamed
