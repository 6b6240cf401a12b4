"""CPU latency and throughput of the diagnosis model's hot path.

Measures, on one thread, in eval and inference mode after a warm-up: ``encode_window`` per
window (the Snapshot form, a mapping of lists), ``collate`` per graph, and one forward pass
at several batch sizes (median and 95th percentile latency, graphs per second). The model
is freshly initialised: latency does not depend on the weights.

Usage::

    python -m training.benchmarks.forward [--out benchmarks/results/forward.json]
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from schemas.spec import SystemSpec, parse_spec
from worker.model import (
    FeatureContract,
    GraphSample,
    ModelConfig,
    SpecGraph,
    UniversalTemporalGNN,
    collate,
    encode_window,
)

DEFAULT_OUT = Path("benchmarks/results/forward.json")
DEFAULT_BATCHES = (1, 8, 32, 128)
_KINDS = (("pressure", "bar"), ("temperature", "degC"), ("flow", "l/min"), ("vibration", "mm/s"))


def bench_spec() -> SystemSpec:
    """The built-in excavator (29 sensors) when the demo catalogue is installed, else a
    generated machine of 10 components with 3 sensors each in a chain."""
    try:
        from machines.catalog import builtin_spec

        return builtin_spec("excavator")
    except (ImportError, LookupError):
        pass
    components = [{"id": f"c{i}", "type": f"type_{i % 4}"} for i in range(10)]
    sensors = [
        {
            "id": f"c{i}_s{j}",
            "component": f"c{i}",
            "kind": _KINDS[(i + j) % len(_KINDS)][0],
            "unit": _KINDS[(i + j) % len(_KINDS)][1],
            "normal": [10.0, 50.0],
            "critical": [0.0, 80.0],
        }
        for i in range(10)
        for j in range(3)
    ]
    connections = [
        {"source": f"c{i}", "target": f"c{i + 1}", "type": "hydraulic_line"} for i in range(9)
    ]
    faults = [
        {"id": f"f{i}", "component": f"c{i}", "affected_sensors": [f"c{i}_s0", f"c{i}_s1"]}
        for i in range(10)
    ]
    return parse_spec(
        {
            "name": "bench_machine",
            "components": components,
            "sensors": sensors,
            "connections": connections,
            "fault_modes": faults,
        }
    )


def _readings(spec: SystemSpec, steps: int, seed: int) -> dict[str, list[float | None]]:
    rng = np.random.default_rng(seed)
    readings: dict[str, list[float | None]] = {}
    for sensor in spec.sensors:
        low, high = sensor.normal
        series: list[float | None] = list(rng.uniform(low, high, steps).tolist())
        series[int(rng.integers(steps))] = None
        readings[sensor.id] = series
    return readings


def _times_ms(run: Callable[[], object], *, warmup: int, seconds: float, least: int) -> list[float]:
    for _ in range(warmup):
        run()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < least or time.perf_counter() < deadline:
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _summary(times: Sequence[float]) -> dict[str, float]:
    return {
        "median_ms": statistics.median(times),
        "p95_ms": float(np.percentile(times, 95)),
        "runs": len(times),
    }


def run(batches: Sequence[int], seconds: float, threads: int) -> dict[str, Any]:
    """Measure everything; returns the JSON-ready report."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    spec = bench_spec()
    contract = FeatureContract()
    config = ModelConfig(
        window_stats=False, identity_buckets=0, component_messages=False
    )  # the bundled model's architecture
    graph = SpecGraph.build(spec, contract)
    model = UniversalTemporalGNN(config, contract).eval()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)

    windows = [_readings(spec, contract.window_steps, seed) for seed in range(max(batches))]
    encode = _times_ms(
        functools.partial(encode_window, graph, windows[0], contract.sample_rate_hz, contract),
        warmup=50,
        seconds=seconds,
        least=200,
    )
    samples: list[GraphSample] = [
        encode_window(graph, window, contract.sample_rate_hz, contract) for window in windows
    ]
    results = []
    with torch.inference_mode():
        for size in batches:
            chosen = samples[:size]
            collate_ms = _times_ms(
                functools.partial(collate, chosen), warmup=5, seconds=seconds, least=20
            )
            batch = collate(chosen)
            forward_ms = _times_ms(
                functools.partial(model, batch), warmup=10, seconds=seconds, least=20
            )
            summary = _summary(forward_ms)
            results.append(
                {
                    "batch": size,
                    "nodes": batch.num_nodes,
                    "edges": int(batch.edge_index.shape[1]),
                    "forward": summary,
                    "graphs_per_s": size / (summary["median_ms"] / 1e3),
                    "collate_per_graph_ms": statistics.median(collate_ms) / size,
                }
            )
    return {
        "spec": {"name": spec.name, "sensors": graph.num_nodes, "edges": graph.num_edges},
        "contract": contract.to_dict(),
        "config": config.to_dict(),
        "parameters": model.num_parameters(),
        "state_dict_bytes": buffer.tell(),
        "encode_window": _summary(encode),
        "forward": results,
        "environment": {
            "threads": threads,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
        },
    }


def table(report: dict[str, Any]) -> str:
    """The report as a fixed-width table."""
    spec = report["spec"]
    encode = report["encode_window"]
    lines = [
        f"spec {spec['name']}: {spec['sensors']} sensors, {spec['edges']} edges; "
        f"{report['parameters']} parameters, "
        f"state_dict {report['state_dict_bytes'] / 1024:.0f} KiB; "
        f"{report['environment']['threads']} thread(s)",
        f"encode_window: median {encode['median_ms']:.3f} ms, p95 {encode['p95_ms']:.3f} ms",
        f"{'batch':>6} {'nodes':>6} {'median ms':>10} {'p95 ms':>8} {'graphs/s':>9} "
        f"{'collate ms/graph':>17}",
    ]
    for row in report["forward"]:
        forward = row["forward"]
        lines.append(
            f"{row['batch']:>6} {row['nodes']:>6} {forward['median_ms']:>10.2f} "
            f"{forward['p95_ms']:>8.2f} {row['graphs_per_s']:>9.0f} "
            f"{row['collate_per_graph_ms']:>17.4f}"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point: measure, print the table, write the JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m training.benchmarks.forward", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report path")
    parser.add_argument("--batch", type=int, nargs="+", default=list(DEFAULT_BATCHES))
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    report = run(args.batch, args.seconds, args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    # This module is a command: the table on stdout is its product, not a debug print.
    sys.stdout.write(table(report))
    sys.stdout.write(f"wrote {args.out}\n")


if __name__ == "__main__":
    main()
