"""``gnn-service run``: the service working end to end on the current settings.

Starts the worker pool and Flower, then streams machines through the queue, one window per
machine per second, and shows the latest diagnosis stored for each machine and its worst
components, read back from the database as the workers store them. The machines are the
four demo machines, each with a fault developing (machine time runs 60x faster), or a
user's machine (``--machine spec.yaml --data runs/``): it is registered in the machine
registry, and each recorded run streams as one machine instance, its snapshots naming the
machine, so that the model routed to it (or the fallback) diagnoses them.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.live import Live

from cli.views import fleet_table
from machines.catalog import DEMO_FAULTS, builtin_spec
from machines.generator import generate
from producer.client import ProducerClient
from producer.stream import run_prefix, snapshots_of
from schemas import Snapshot
from service.db.reader import DiagnosisReader
from service.launcher import WorkerProcess
from service.settings import Settings


@dataclass
class StreamedMachine:
    """One machine instance streamed by ``run``: its snapshots, sent one per second."""

    name: str
    system_id: str
    snapshots: list[Snapshot]
    sent: int = 0


def demo_machines(duration_s: float, console: Console) -> list[StreamedMachine]:
    """The four demo machines, each with its demo fault developing, for ``duration_s``."""
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
            machines.append(StreamedMachine(name, f"demo-{name}", list(cut)))
    return machines


def run_demo(
    settings: Settings,
    machines: list[StreamedMachine],
    *,
    duration_s: float,
    workers: int,
    flower: bool,
    console: Console,
) -> int:
    """Stream ``machines`` for ``duration_s`` seconds (at most one window per machine per
    second, until a machine has none left); returns the number of diagnoses stored."""
    steps = max(len(machine.snapshots) for machine in machines)
    logs = settings.data_dir / "logs"
    pool = [
        WorkerProcess(env={}, hostname=f"gnn-run-{index}@%h", log_path=logs / f"worker-{index}.log")
        for index in range(1, workers + 1)
    ]
    console.print(f"starting {workers} worker(s) (logs: {logs}/worker-N.log)")
    for worker in pool:
        worker.start()
    monitor = None
    reader = DiagnosisReader(settings)
    started_at = datetime.now(UTC)
    try:
        with console.status("workers loading and warming the model"):
            for worker in pool:
                worker.wait_ready(timeout_s=settings.worker.process_init_timeout_s + 60)
        console.print("ready: " + ", ".join(f"{w.base_url}/readyz" for w in pool))
        # Flower asks the workers for their queues when it starts (and on a refresh of its
        # Workers page): started after them, its Broker tab lists the snapshot queue.
        monitor = _start_flower(settings, logs / "flower.log", console) if flower else None
        with (
            ProducerClient(settings) as client,
            Live(console=console, refresh_per_second=4) as live,
        ):
            _stream(client, reader, machines, live, steps=steps, duration_s=duration_s)
        if not console.is_terminal:
            console.line()  # off a terminal, Live leaves its last frame without a newline
        stored = sum(
            len(reader.history(m.system_id, since=started_at, limit=10_000)) for m in machines
        )
        sent = sum(machine.sent for machine in machines)
        if stored < sent:
            console.print(f"{sent - stored} of {sent} snapshots not stored when the demo ended")
    finally:
        reader.close()
        if monitor is not None:
            monitor.terminate()
            try:
                monitor.wait(10)
            except subprocess.TimeoutExpired:  # Flower may wait on a worker inspection
                monitor.kill()
                monitor.wait()
        for index, worker in enumerate(pool, start=1):
            console.print(f"worker {index} stopped (exit {worker.stop()})")
    return stored


def _stream(
    client: ProducerClient,
    reader: DiagnosisReader,
    machines: list[StreamedMachine],
    live: Live,
    *,
    steps: int,
    duration_s: float,
) -> None:
    """One window per machine per second; the view refreshes from the database."""
    ours = {machine.system_id for machine in machines}
    sent_ids: set[str] = set()  # a previous run's diagnoses of the same machines are not shown
    started = time.monotonic()
    second = 0
    while True:
        elapsed = time.monotonic() - started
        if elapsed < duration_s and second < steps:
            for machine in machines:
                if second < len(machine.snapshots):
                    client.submit(machine.snapshots[second])
                    sent_ids.add(machine.snapshots[second].snapshot_id)
                    machine.sent += 1
            second += 1
        latest = [
            d
            for d in reader.latest_per_system()
            if d.system_id in ours and d.snapshot_id in sent_ids
        ]
        title = f"latest stored diagnosis per machine ({elapsed:.0f} s, one window a second)"
        live.update(fleet_table(title, latest))
        sent_last = {m.system_id: m.snapshots[m.sent - 1].snapshot_id for m in machines}
        caught_up = all(sent_last[d.system_id] == d.snapshot_id for d in latest)
        done = elapsed >= duration_s or second >= steps
        if done and (caught_up and len(latest) == len(machines)):
            return
        if elapsed > min(duration_s, second) + 30:
            return  # the workers stopped answering; the caller says how many are missing
        time.sleep(0.5 if elapsed >= duration_s else max(0.0, started + second - time.monotonic()))


def _start_flower(
    settings: Settings, log_path: Path, console: Console
) -> subprocess.Popen[bytes] | None:
    """Flower on the service's broker, with a password made up for this run if none is set.

    Its address and credentials are printed once it listens; a taken port, or a Flower that
    exits or does not listen within :data:`_FLOWER_START_S`, is said in one line instead (the
    demo runs on without it)."""
    security = settings.security
    host, port = security.flower_address, security.flower_port
    if _listening(host, port):
        console.print(
            f"Flower not started: {host}:{port} is already in use (GNN_SECURITY__FLOWER_PORT)"
        )
        return None
    password = (
        security.flower_password.get_secret_value()
        if security.flower_password is not None
        else secrets.token_urlsafe(12)
    )
    env = {**os.environ, "GNN_SECURITY__FLOWER_PASSWORD": password}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "flower"], env=env, stdout=log, stderr=log
        )
    deadline = time.monotonic() + _FLOWER_START_S
    while not _listening(host, port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            console.print(f"Flower did not start (exit {process.returncode}); see {log_path}")
            return None
        time.sleep(0.2)
    shown = password if security.flower_password is None else "(GNN_SECURITY__FLOWER_PASSWORD)"
    console.print(f"Flower: http://{host}:{port} user {security.flower_user} password {shown}")
    return process


_FLOWER_START_S = 30.0


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
