"""``gnn-service demo``: list and inspect the demo machines, generate and plot runs.

The root CLI mounts :data:`demo_app`; every command here only parses options and calls
one function of :mod:`machines`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.errors import require_extra
from machines.catalog import UnknownMachineError, builtin_names, builtin_spec
from machines.durations import DurationError, parse_duration
from machines.faults import FaultSpec, FaultSpecError
from machines.generator import GenerationError, generate, resolve_faults
from machines.run import Run
from schemas import SpecError, SystemSpec, load_spec

demo_app = typer.Typer(
    name="demo",
    help="Demo machines: list, show, validate specs, generate and plot simulated runs.",
    no_args_is_help=True,
    add_completion=False,
)

_SPEC_SUFFIXES = (".yaml", ".yml", ".json")

SystemOption = Annotated[
    str,
    typer.Option(
        "--system",
        "-s",
        help="Built-in machine name, or a .yaml/.json spec file (generic physics).",
    ),
]
FaultOption = Annotated[
    list[str] | None,
    typer.Option(
        "--fault",
        "-f",
        help="Fault to inject: ID@ONSET[:step|linear|exponential[:SEVERITY[:TIME_TO_FAILURE]]]; "
        "repeatable.",
    ),
]
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed.")]


def spec_option(system: str) -> SystemSpec:
    """Resolve a ``--system`` value: a built-in name or a spec file; bad values exit 2."""
    if system.lower().endswith(_SPEC_SUFFIXES):
        try:
            return load_spec(system)
        except SpecError as exc:
            raise typer.BadParameter(str(exc).replace("\n", "; "), param_hint="--system") from None
    try:
        return builtin_spec(system)
    except UnknownMachineError as exc:
        raise typer.BadParameter(str(exc), param_hint="--system") from None


def duration_option(text: str, option: str) -> float:
    """Parse a duration option (``90s``, ``10m``, ``6h``, ``2d``); a bad value exits 2."""
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def faults_option(spec: SystemSpec, faults: list[str] | None) -> tuple[FaultSpec, ...]:
    """Parse ``--fault`` values against ``spec``'s fault modes; a bad value exits 2."""
    try:
        return resolve_faults(spec, faults or [])
    except FaultSpecError as exc:
        raise typer.BadParameter(str(exc), param_hint="--fault") from None


def _generate(
    spec: SystemSpec, duration_s: float, faults: tuple[FaultSpec, ...], seed: int, console: Console
) -> Run:
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"simulating {spec.name}", total=1.0)

        def report(stage: str, done: float) -> None:
            progress.update(task, completed=done, description=f"simulating {spec.name}: {stage}")

        try:
            return generate(spec, duration_s=duration_s, faults=faults, seed=seed, progress=report)
        except GenerationError as exc:
            raise typer.BadParameter(str(exc), param_hint="--duration") from None


@demo_app.command("list")
def list_machines() -> None:
    """List the built-in machines."""
    table = Table(title="Built-in machines")
    for column in ("name", "components", "sensors", "connections", "fault modes"):
        table.add_column(column, justify="left" if column == "name" else "right")
    for name in builtin_names():
        spec = builtin_spec(name)
        table.add_row(
            name,
            str(len(spec.components)),
            str(len(spec.sensors)),
            str(len(spec.connections)),
            str(len(spec.fault_modes)),
        )
    Console().print(table)


@demo_app.command("show")
def show(
    system: Annotated[str, typer.Argument(help="Built-in machine name or spec file.")],
) -> None:
    """Show a machine's components, sensors, connections and fault modes."""
    spec = spec_option(system)
    console = Console()
    console.print(f"[bold]{spec.name}[/bold]: {spec.description or ''}")
    components = Table(title="Components")
    for column in ("id", "type", "sensors", "description"):
        components.add_column(column, no_wrap=column != "description")
    for component in spec.components:
        components.add_row(
            component.id,
            component.type,
            str(len(spec.sensors_of(component.id))),
            component.description or "",
        )
    sensors = Table(title="Sensors")
    for column in ("id", "component", "kind", "unit", "normal", "critical"):
        sensors.add_column(column, no_wrap=True)
    for sensor in spec.sensors:
        sensors.add_row(
            sensor.id,
            sensor.component,
            sensor.kind,
            sensor.unit,
            f"{sensor.normal[0]:g} .. {sensor.normal[1]:g}",
            f"{sensor.critical[0]:g} .. {sensor.critical[1]:g}",
        )
    connections = Table(title="Connections")
    for column in ("source", "target", "type", "attributes"):
        connections.add_column(column, no_wrap=column != "attributes")
    for link in spec.connections:
        attributes = ", ".join(f"{key}={value:g}" for key, value in link.attributes.items())
        connections.add_row(link.source, link.target, link.type, attributes)
    faults = Table(title="Fault modes")
    for column in ("id", "component", "affected sensors", "description"):
        faults.add_column(column, no_wrap=column in ("id", "component"))
    for fault in spec.fault_modes:
        faults.add_row(
            fault.id, fault.component, ", ".join(fault.affected_sensors), fault.description or ""
        )
    for table in (components, sensors, connections, faults):
        console.print(table)


@demo_app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="Machine description (.yaml, .yml or .json).")],
) -> None:
    """Check a machine description; exit 1 listing every problem as 'path: problem'."""
    try:
        spec = load_spec(file)
    except SpecError as exc:
        console = Console(stderr=True, highlight=False, soft_wrap=True)
        count = len(exc.issues)
        console.print(
            f"{file}: invalid machine description ({count} problem{'s' if count != 1 else ''})",
            markup=False,
        )
        for path, message in exc.issues:
            console.print(f"  {path}: {message}", markup=False)
        raise typer.Exit(1) from None
    Console(highlight=False, soft_wrap=True).print(
        f"{file}: valid machine {spec.name!r}: {len(spec.components)} components, "
        f"{len(spec.sensors)} sensors, {len(spec.connections)} connections, "
        f"{len(spec.fault_modes)} fault modes",
        markup=False,
    )


@demo_app.command("generate")
def generate_command(
    *,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file, .parquet or .csv.")],
    system: SystemOption = "excavator",
    duration: Annotated[
        str, typer.Option("--duration", "-d", help="Simulated time: 90s, 10m, 6h, 2d.")
    ] = "24h",
    fault: FaultOption = None,
    seed: SeedOption = 0,
) -> None:
    """Simulate a machine and write the run (readings and labels) to Parquet or CSV."""
    from machines.run_io import write_run

    if out.suffix.lower() not in (".parquet", ".csv"):
        raise typer.BadParameter("output must end in .parquet or .csv", param_hint="--out")
    spec = spec_option(system)
    duration_s = duration_option(duration, "--duration")
    faults = faults_option(spec, fault)
    console = Console(highlight=False, soft_wrap=True)
    began = time.perf_counter()
    run = _generate(spec, duration_s, faults, seed, console)
    simulated = time.perf_counter() - began
    write_run(run, out)
    console.print(
        f"wrote {out}: {run.steps} steps x {len(run.sensor_ids)} sensors of {spec.name}, "
        f"faults: {', '.join(str(f) for f in run.faults) or 'none'}; "
        f"simulated in {simulated:.2f} s, total {time.perf_counter() - began:.2f} s"
    )


@demo_app.command("plot")
def plot(
    *,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output PNG file.")],
    system: SystemOption = "excavator",
    fault: FaultOption = None,
    duration: Annotated[
        str, typer.Option("--duration", "-d", help="Simulated time: 90s, 10m, 6h, 2d.")
    ] = "12h",
    seed: SeedOption = 0,
    sensor: Annotated[
        list[str] | None,
        typer.Option("--sensor", help="Sensor to draw (repeatable); default: the fault's."),
    ] = None,
    smooth: Annotated[
        str, typer.Option("--smooth", help="Moving-average width drawn over the readings.")
    ] = "15m",
) -> None:
    """Simulate a machine and plot sensors and health labels through the faults' onsets."""
    require_extra("demo plot")
    from training.plotting import plot_run

    spec = spec_option(system)
    duration_s = duration_option(duration, "--duration")
    smooth_s = duration_option(smooth, "--smooth")
    faults = faults_option(spec, fault)
    unknown = [sensor_id for sensor_id in sensor or [] if sensor_id not in spec.sensor_index]
    if unknown:
        raise typer.BadParameter(
            f"unknown sensor {unknown[0]!r} of {spec.name}", param_hint="--sensor"
        )
    console = Console(highlight=False, soft_wrap=True)
    run = _generate(spec, duration_s, faults, seed, console)
    path = plot_run(run, out, sensors=sensor or None, smooth_s=smooth_s)
    console.print(f"wrote {path}")
