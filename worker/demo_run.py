"""``gnn-service run``: the service working end to end on the current settings.

Starts a worker process, then streams the four demo machines, each with a fault developing,
through the queue (machine time runs 60x faster: one 60 s window per second per machine) and
shows the latest diagnosis of each machine as it arrives.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.table import Table

from producer.client import ProducerClient
from producer.demo.catalog import builtin_spec
from producer.demo.generator import generate
from producer.stream import run_prefix, snapshots_of
from schemas import Diagnosis, Snapshot
from schemas.result import Diagnosed
from worker.launcher import WorkerProcess
from worker.settings import Settings

#: Each demo machine and the fault that develops in it (onset and time to failure in
#: machine time).
DEMO_FAULTS = {
    "excavator": "pump_internal_leak@10m:exponential:1:60m",
    "injection_molding_machine": "heater_band_failure@10m:linear:1:60m",
    "cnc_machine": "spindle_bearing_wear@10m:exponential:1:60m",
    "industrial_robot": "gearbox_wear@10m:linear:1:60m",
}


@dataclass
class _Machine:
    name: str
    snapshots: list[Snapshot]
    latest: Diagnosis | None = None
    sent: int = 0
    diagnosed: int = 0


def run_demo(settings: Settings, *, duration_s: float, console: Console) -> int:
    """Run the demo for ``duration_s`` seconds; returns the number of diagnoses shown."""
    steps = max(2, int(duration_s)) + 2
    prefix = run_prefix()
    machines = []
    with console.status("simulating the demo machines"):
        for name, fault in DEMO_FAULTS.items():
            run = generate(builtin_spec(name), duration_s=60.0 * steps + 60, faults=[fault], seed=1)
            cut = snapshots_of(
                run, window=60, stride=60, count=steps, prefix=f"{prefix}-{name}",
                system_id=f"demo-{name}",
            )  # fmt: skip
            machines.append(_Machine(name, list(cut)))
    log_path = settings.data_dir / "logs" / "worker-run.log"
    worker = WorkerProcess(env={}, hostname="gnn-run@%h", log_path=log_path)
    console.print(f"starting a worker (log: {log_path})")
    worker.start()
    shown = 0
    try:
        with console.status("worker loading and warming the model"):
            worker.wait_ready(timeout_s=settings.worker.process_init_timeout_s + 60)
        console.print(f"worker ready: {worker.base_url}/readyz")
        with (
            ProducerClient(settings) as client,
            Live(console=console, refresh_per_second=4) as live,
        ):
            pending: dict[str, _Machine] = {}
            started = time.monotonic()
            second = 0
            while time.monotonic() - started < duration_s or pending:
                if time.monotonic() - started < duration_s and second < steps:
                    for machine in machines:
                        snapshot = machine.snapshots[second]
                        client.submit(snapshot)
                        pending[snapshot.snapshot_id] = machine
                        machine.sent += 1
                    second += 1
                shown += _collect(client, pending)
                live.update(_table(machines, time.monotonic() - started))
                if time.monotonic() - started > duration_s + 30:
                    break  # the worker stopped answering; say so below
                time.sleep(max(0.0, started + second - time.monotonic()) if pending else 0.2)
        if pending:
            console.print(f"{len(pending)} snapshots still unanswered when the demo ended")
    finally:
        code = worker.stop()
        console.print(f"worker stopped (exit {code})")
    return shown


def _collect(client: ProducerClient, pending: dict[str, _Machine]) -> int:
    done = 0
    for snapshot_id in list(pending):
        result = client.app.AsyncResult(snapshot_id)
        if not result.ready():
            continue
        machine = pending.pop(snapshot_id)
        outcome = client.result(snapshot_id, timeout=1.0)
        if isinstance(outcome, Diagnosed):
            machine.latest = outcome.diagnosis
            machine.diagnosed += 1
            done += 1
    return done


def _table(machines: list[_Machine], elapsed_s: float) -> Table:
    table = Table(title=f"latest diagnosis per machine ({elapsed_s:.0f} s)")
    for column in ("machine", "machine time", "health", "worst component", "status",
                   "likely fault", "anomaly", "RUL h", "diagnosed"):  # fmt: skip
        table.add_column(column)
    for machine in machines:
        diagnosis = machine.latest
        if diagnosis is None:
            table.add_row(machine.name, "-", "-", "-", "-", "-", "-", "-", str(machine.diagnosed))
            continue
        worst = min(diagnosis.components, key=lambda c: c.health)
        style = {"ok": "green", "warning": "yellow", "critical": "red"}[worst.status]
        likely = _likely_fault(diagnosis)
        table.add_row(
            machine.name,
            f"{machine.diagnosed} min",
            f"{diagnosis.machine_health:.2f}",
            worst.component_id,
            f"[{style}]{worst.status}[/{style}]",
            likely,
            f"{max(c.anomaly_score for c in diagnosis.components):.1f}",
            f"{worst.rul.hours:.0f}" if worst.rul else "-",
            str(machine.diagnosed),
        )
    return table


def _likely_fault(diagnosis: Diagnosis) -> str:
    best: tuple[float, str] = (0.0, "normal")
    for component in diagnosis.components:
        for fault, probability in component.fault_probabilities.items():
            if fault != "normal" and probability > best[0]:
                best = (probability, fault)
    return f"{best[1]} ({best[0]:.2f})" if best[1] != "normal" else "normal"
