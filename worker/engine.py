"""The model runner: one loaded model version on one device, with warm-up, out-of-memory
splitting and GPU memory limits.

The runner owns the model and its spec-graph cache. ``forward`` runs one batch; if the device
runs out of memory it empties the allocator cache, splits the batch in halves and retries,
down to single snapshots, so that one large batch never fails a whole micro-batch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from loguru import logger

from service.errors import ModelError
from worker.model import (
    FeatureContract,
    GraphSample,
    ModelOutput,
    SpecGraphCache,
    UniversalTemporalGNN,
    collate,
)


def resolve_device(setting: str) -> torch.device:
    """``auto`` picks the first CUDA device if there is one, else the CPU.

    Raises:
        ModelError: A CUDA device was asked for and none is usable.
    """
    if setting == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelError(f"GNN_MODEL__DEVICE={setting}: CUDA is not available here")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise ModelError(
                f"GNN_MODEL__DEVICE={setting}: only {torch.cuda.device_count()} CUDA devices"
            )
    return device


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says the device (or the host allocator) ran out of memory."""
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(exc)
    # CPU: the default allocator says "can't allocate memory"; oneDNN fails to create its
    # kernels ("could not create a primitive") when it cannot allocate their scratch space.
    return isinstance(exc, RuntimeError) and any(
        marker in text
        for marker in (
            "out of memory",
            "can't allocate memory",
            "Cannot allocate memory",
            "could not create a primitive",
        )
    )


@dataclass(frozen=True)
class ForwardStats:
    """What one ``forward`` call did."""

    seconds: float
    splits: int
    out_of_memory: int


class ModelRunner:
    """One model version, ready to run batches.

    Args:
        model: The network (moved to ``device`` and set to eval mode here).
        contract: The feature contract the model was trained with.
        version: ``name:version`` of the model, written into every diagnosis.
        device: Where the model runs.
        cuda_memory_fraction: Share of the GPU this process may allocate (CUDA only).
        calibration: The status thresholds the model was calibrated with (checkpoint
            metadata); empty when it has none.
    """

    def __init__(
        self,
        *,
        model: UniversalTemporalGNN,
        contract: FeatureContract,
        version: str,
        device: torch.device,
        cuda_memory_fraction: float = 0.9,
        calibration: Mapping[str, Any] | None = None,
    ) -> None:
        self.contract = contract
        self.calibration: Mapping[str, Any] = dict(calibration or {})
        self.version = version
        self.device = device
        self.specs = SpecGraphCache(contract)
        if device.type == "cuda":
            torch.cuda.set_per_process_memory_fraction(cuda_memory_fraction, device)
        self.model = model.to(device).eval()
        self.out_of_memory_count = 0
        self.warmup_seconds: float | None = None

    def __repr__(self) -> str:
        return f"ModelRunner(version={self.version!r}, device={self.device})"

    @property
    def warm(self) -> bool:
        """Whether ``warm_up`` ran."""
        return self.warmup_seconds is not None

    def forward(self, samples: Sequence[GraphSample]) -> tuple[list[ModelOutput], ForwardStats]:
        """Run the model on ``samples``; one output per sample, in order.

        Raises:
            ModelError: The model failed (out of memory even for a single snapshot, or any
                other error while computing).
        """
        started = time.perf_counter()
        oom_before = self.out_of_memory_count
        outputs, splits = self._forward(list(samples))
        stats = ForwardStats(
            seconds=time.perf_counter() - started,
            splits=splits,
            out_of_memory=self.out_of_memory_count - oom_before,
        )
        return outputs, stats

    def _forward(self, samples: list[GraphSample]) -> tuple[list[ModelOutput], int]:
        message = self._try_forward(samples)
        if isinstance(message, list):
            return message, 0
        # Retried only here, outside the except clause: inside it the exception's traceback
        # would keep the failed attempt's tensors alive and the halves would fail too.
        self.out_of_memory_count += 1
        self._release_cache()
        if len(samples) == 1:
            raise ModelError(
                f"model {self.version} ran out of memory on a single snapshot of "
                f"{samples[0].x.shape[0]} sensors: {message}"
            )
        half = len(samples) // 2
        logger.warning(
            "out of memory: splitting the batch", snapshots=len(samples), device=str(self.device)
        )
        left, left_splits = self._forward(samples[:half])
        right, right_splits = self._forward(samples[half:])
        return left + right, 1 + left_splits + right_splits

    def _try_forward(self, samples: list[GraphSample]) -> list[ModelOutput] | str:
        """The outputs, or the out-of-memory message; any other failure raises ModelError."""
        try:
            batch = collate(samples).to(self.device)
            with torch.inference_mode():
                output: ModelOutput = self.model(batch)
            _require_finite(output, self.version)
            return output.to("cpu").split(batch)
        except ModelError:
            raise
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise ModelError(f"model {self.version} failed: {exc}") from exc
            return str(exc)

    def warm_up(self, samples: Sequence[GraphSample], batches: int) -> float:
        """Run ``batches`` forward passes on representative samples; returns the seconds."""
        started = time.perf_counter()
        for _ in range(batches):
            self.forward(samples)
        self.warmup_seconds = time.perf_counter() - started
        return self.warmup_seconds

    def memory(self) -> dict[str, int]:
        """CUDA memory allocated, reserved and peak in bytes (zeros on the CPU)."""
        if self.device.type != "cuda":
            return {"allocated": 0, "reserved": 0, "peak": 0}
        return {
            "allocated": int(torch.cuda.memory_allocated(self.device)),
            "reserved": int(torch.cuda.memory_reserved(self.device)),
            "peak": int(torch.cuda.max_memory_allocated(self.device)),
        }

    def _release_cache(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _require_finite(output: ModelOutput, version: str) -> None:
    # A diverged or corrupted model yields NaN; that is a model failure, not a diagnosis.
    for name in ("component_health", "normal_prob", "fault_prob", "rul_hours", "sensor_anomaly"):
        if not bool(torch.isfinite(getattr(output, name)).all()):
            raise ModelError(f"model {version} produced non-finite {name}")
