"""The diagnosis model: feature contract, spec graphs, window encoding, batching, GNN, losses,
checkpoints and the model registry.

Importing this package loads torch and torch_geometric but builds nothing: models, caches
and contracts are created by whoever owns them (the model runner, the trainer).
"""

from __future__ import annotations

from worker.model.batch import GraphBatch, GraphSample, collate
from worker.model.contract import FeatureContract
from worker.model.features import Readings, encode_window
from worker.model.gnn import ModelConfig, UniversalTemporalGNN
from worker.model.loader import (
    CheckpointError,
    CheckpointMetadata,
    LoadedModel,
    load_checkpoint,
    save_checkpoint,
)
from worker.model.losses import NORMAL_CLASS, LossWeights, Targets, model_loss
from worker.model.outputs import ModelOutput
from worker.model.registry import (
    ModelRegistry,
    ModelStatus,
    ModelVersion,
    RegistryError,
    ResolvedModel,
    bundled_checkpoints,
    resolve_model,
)
from worker.model.spec_graph import SpecGraph, SpecGraphCache

__all__ = [
    "NORMAL_CLASS",
    "CheckpointError",
    "CheckpointMetadata",
    "FeatureContract",
    "GraphBatch",
    "GraphSample",
    "LoadedModel",
    "LossWeights",
    "ModelConfig",
    "ModelOutput",
    "ModelRegistry",
    "ModelStatus",
    "ModelVersion",
    "Readings",
    "RegistryError",
    "ResolvedModel",
    "SpecGraph",
    "SpecGraphCache",
    "Targets",
    "UniversalTemporalGNN",
    "bundled_checkpoints",
    "collate",
    "encode_window",
    "load_checkpoint",
    "model_loss",
    "resolve_model",
    "save_checkpoint",
]
