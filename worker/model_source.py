"""Where a worker's models come from: the registry's active version of a name, else the
bundled one; loaded onto the configured device and warmed on representative batches (of the
machines the model serves) before it takes traffic.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from loguru import logger

from machines.catalog import builtin_names, builtin_spec
from machines.generator import generate
from schemas import SystemSpec
from service.settings import Settings
from worker.engine import ModelRunner, resolve_device
from worker.model import GraphSample, encode_window
from worker.model.loader import load_checkpoint
from worker.model.registry import ModelRegistry, resolve_model

#: Machine time simulated per demo machine to build warm-up windows.
_WARMUP_SIMULATED_S = 180.0


class ModelSource:
    """Resolves, loads and warms the model a worker serves.

    Args:
        settings: Service settings (model name, device, warm-up batches).
        registry: The model registry (``None``: serve the bundled checkpoint only).
    """

    def __init__(self, settings: Settings, registry: ModelRegistry | None) -> None:
        self.settings = settings
        self.registry = registry

    def __repr__(self) -> str:
        return f"ModelSource(name={self.settings.model.name!r}, registry={self.registry!r})"

    def token(self) -> str:
        """Changes whenever another version becomes active; cheap enough between batches."""
        if self.registry is None:
            return "bundled"
        return self.registry.active_token(self.settings.model.name) or "bundled"

    def load(self) -> ModelRunner:
        """Load the fallback model (``GNN_MODEL__NAME``) and warm it up on the demo machines."""
        return self.load_model(self.settings.model.name)

    def load_model(self, name: str, machines: Sequence[SystemSpec] = ()) -> ModelRunner:
        """Load the model to serve now under ``name`` and warm it up.

        Args:
            name: Model name (its active version, else its bundled checkpoint).
            machines: Specs of the machines it serves, to warm it up on (default: the
                demo machines).
        """
        config = self.settings.model
        torch.set_num_threads(config.torch_threads)
        resolved = resolve_model(self.registry, name)
        device = resolve_device(config.device)
        loaded = load_checkpoint(resolved.path, device=device)
        runner = ModelRunner(
            model=loaded.model,
            contract=loaded.contract,
            version=f"{resolved.name}:{resolved.version}",
            device=device,
            cuda_memory_fraction=config.cuda_memory_fraction,
            calibration=loaded.metadata.calibration,
        )
        samples = self._warmup_samples(runner, machines)
        seconds = runner.warm_up(samples, config.warmup_batches)
        logger.info(
            "model loaded and warmed",
            model_version=runner.version,
            origin=resolved.origin,
            device=str(device),
            warmup_s=round(seconds, 3),
            calibrated_thresholds=bool(runner.calibration.get("calibrated")),
        )
        return runner

    def _warmup_samples(
        self, runner: ModelRunner, machines: Sequence[SystemSpec]
    ) -> list[GraphSample]:
        """A full-size batch of windows of the served machines (default: every demo
        machine), as the queue would bring."""
        return warmup_samples(runner, machines, self.settings.batching.max_batch_snapshots)


def warmup_samples(
    runner: ModelRunner, machines: Sequence[SystemSpec], size: int
) -> list[GraphSample]:
    """``size`` encoded windows of simulated runs of ``machines`` (default: every demo
    machine), cycling through them."""
    contract = runner.contract
    seconds = max(_WARMUP_SIMULATED_S, 2.0 * contract.window_steps / contract.sample_rate_hz)
    samples = []
    for spec in machines or [builtin_spec(name) for name in builtin_names()]:
        run = generate(spec, duration_s=seconds, seed=0)
        steps = max(1, round(contract.window_steps / contract.sample_rate_hz * run.sample_rate_hz))
        window = run.readings[-steps:]
        samples.append(encode_window(runner.specs.get(spec), window, run.sample_rate_hz, contract))
    return [samples[i % len(samples)] for i in range(size)]


def try_serving(path: Path, machines: Sequence[SystemSpec]) -> str:
    """Load a checkpoint on the CPU and run it on windows of ``machines``, as a worker
    would before it takes traffic; returns ``name:version``.

    Raises:
        Exception: Whatever a worker would meet: a checkpoint that does not load, a
            machine it cannot encode, a forward that fails or gives non-finite outputs.
    """
    loaded = load_checkpoint(path, device=torch.device("cpu"))
    runner = ModelRunner(
        model=loaded.model,
        contract=loaded.contract,
        version=f"{loaded.name}:{loaded.version}",
        device=torch.device("cpu"),
        calibration=loaded.metadata.calibration,
    )
    runner.warm_up(warmup_samples(runner, machines, len(machines) or len(builtin_names())), 1)
    return runner.version
