"""The diagnosis model: feature contract, spec graphs, window encoding, batching, GNN, losses.

Importing this package loads torch and torch_geometric but builds nothing: models, caches
and contracts are created by whoever owns them (the model runner, the trainer).
"""

from __future__ import annotations

from worker.model.batch import GraphBatch, GraphSample, collate
from worker.model.contract import FeatureContract
from worker.model.features import Readings, encode_window
from worker.model.gnn import ModelConfig, UniversalTemporalGNN
from worker.model.losses import NORMAL_CLASS, LossWeights, Targets, model_loss
from worker.model.outputs import ModelOutput
from worker.model.spec_graph import SpecGraph, SpecGraphCache

__all__ = [
    "NORMAL_CLASS",
    "FeatureContract",
    "GraphBatch",
    "GraphSample",
    "LossWeights",
    "ModelConfig",
    "ModelOutput",
    "Readings",
    "SpecGraph",
    "SpecGraphCache",
    "Targets",
    "UniversalTemporalGNN",
    "collate",
    "encode_window",
    "model_loss",
]
