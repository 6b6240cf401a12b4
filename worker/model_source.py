"""Where a worker's model comes from: the registry's active version, else the bundled one;
loaded onto the configured device and warmed on representative batches before use.
"""

from __future__ import annotations

import torch
from loguru import logger

from machines.catalog import builtin_names, builtin_spec
from machines.generator import generate
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
        self._warmup: list[GraphSample] | None = None

    def __repr__(self) -> str:
        return f"ModelSource(name={self.settings.model.name!r}, registry={self.registry!r})"

    def token(self) -> str:
        """Changes whenever another version becomes active; cheap enough between batches."""
        if self.registry is None:
            return "bundled"
        return self.registry.active_token(self.settings.model.name) or "bundled"

    def load(self) -> ModelRunner:
        """Load the model to serve now and warm it up."""
        config = self.settings.model
        torch.set_num_threads(config.torch_threads)
        resolved = resolve_model(self.registry, config.name)
        device = resolve_device(config.device)
        loaded = load_checkpoint(resolved.path, device=device)
        runner = ModelRunner(
            model=loaded.model,
            contract=loaded.contract,
            version=f"{loaded.name}:{loaded.version}",
            device=device,
            cuda_memory_fraction=config.cuda_memory_fraction,
            calibration=loaded.metadata.calibration,
        )
        seconds = runner.warm_up(self._warmup_samples(runner), config.warmup_batches)
        logger.info(
            "model loaded and warmed",
            model_version=runner.version,
            origin=resolved.origin,
            device=str(device),
            warmup_s=round(seconds, 3),
            calibrated_thresholds=bool(runner.calibration.get("calibrated")),
        )
        return runner

    def _warmup_samples(self, runner: ModelRunner) -> list[GraphSample]:
        """A full-size batch of windows of every demo machine, as the queue would bring."""
        steps = runner.contract.window_steps
        samples = []
        for name in builtin_names():
            spec = builtin_spec(name)
            run = generate(spec, duration_s=_WARMUP_SIMULATED_S, seed=0)
            window = run.readings[-steps:]
            samples.append(
                encode_window(runner.specs.get(spec), window, run.sample_rate_hz, runner.contract)
            )
        size = self.settings.batching.max_batch_snapshots
        return [samples[i % len(samples)] for i in range(size)]
