from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from schemas.spec import SystemSpec
from worker.model import (
    FeatureContract,
    GraphBatch,
    LossWeights,
    ModelConfig,
    SpecGraph,
    Targets,
    UniversalTemporalGNN,
    collate,
    encode_window,
    model_loss,
)
from worker.model.losses import fault_log_prob

CONTRACT = FeatureContract()
MakeReadings = Callable[..., dict[str, list[float | None]]]


def _batch(
    specs: list[SystemSpec], make_readings: MakeReadings, *, flood: bool = False
) -> GraphBatch:
    samples = []
    for seed, spec in enumerate(specs):
        readings = make_readings(spec, seed=seed)
        if flood:  # every reading NaN but one (a window with none is dead-lettered)
            kept = next(iter(readings))
            readings = {
                sid: [math.nan] * 59 + [readings[kept][-1] if sid == kept else math.nan]
                for sid in readings
            }
        samples.append(encode_window(SpecGraph.build(spec, CONTRACT), readings, 1.0, CONTRACT))
    return collate(samples)


def _targets(batch: GraphBatch, *, valid: bool = True) -> Targets:
    components = batch.num_components
    generator = torch.Generator().manual_seed(0)
    candidates = torch.bincount(batch.fault_component, minlength=components)
    fault_index = (torch.rand(components, generator=generator) * (candidates + 1)).long()
    flags = torch.full((components,), valid)
    return Targets(
        component_health=torch.rand(components, generator=generator),
        health_valid=flags,
        fault_index=fault_index,
        fault_valid=flags,
        rul_hours=torch.rand(components, generator=generator) * 500,
        rul_valid=flags,
    )


@pytest.fixture
def model(tiny_config: ModelConfig) -> UniversalTemporalGNN:
    torch.manual_seed(0)
    return UniversalTemporalGNN(tiny_config, CONTRACT).train()


@pytest.mark.parametrize("flood", [False, True], ids=["healthy", "nan_flood"])
def test_every_term_is_a_finite_scalar_and_one_backward_reaches_every_parameter(
    model: UniversalTemporalGNN,
    press_spec: SystemSpec,
    skid_spec: SystemSpec,
    make_readings: MakeReadings,
    flood: bool,
) -> None:
    batch = _batch([press_spec, skid_spec, press_spec], make_readings, flood=flood)
    losses = model_loss(model(batch), batch, _targets(batch))
    assert set(losses) == {"forecast", "health", "fault", "rul", "total"}
    for name, value in losses.items():
        assert value.shape == (), name
        assert math.isfinite(float(value.detach())), name
    losses["total"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert bool(torch.isfinite(parameter.grad).all()), name
        if not flood:
            assert bool(parameter.grad.abs().sum() > 0), name


def test_fault_log_prob_is_the_log_softmax_over_each_components_candidates(
    model: UniversalTemporalGNN,
    press_spec: SystemSpec,
    skid_spec: SystemSpec,
    make_readings: MakeReadings,
) -> None:
    batch = _batch([press_spec, skid_spec], make_readings)
    output = model.eval()(batch)
    targets = _targets(batch)
    log_prob = fault_log_prob(output, batch, targets.fault_index)
    for component in range(batch.num_components):
        own = (batch.fault_component == component).nonzero().flatten()
        ranked = own[batch.fault_rank[own].argsort()]
        logits = torch.cat(
            [output.normal_logit[component : component + 1], output.fault_logit[ranked]]
        )
        expected = torch.log_softmax(logits, dim=0)[targets.fault_index[component]]
        torch.testing.assert_close(log_prob[component], expected)
    probability = torch.exp(log_prob)
    chosen_normal = targets.fault_index == 0
    torch.testing.assert_close(probability[chosen_normal], output.normal_prob[chosen_normal])


def test_a_fault_index_beyond_the_components_candidates_is_refused(
    model: UniversalTemporalGNN, skid_spec: SystemSpec, make_readings: MakeReadings
) -> None:
    batch = _batch([skid_spec], make_readings)
    with pytest.raises(ValueError, match="candidate its component does not have"):
        fault_log_prob(model(batch), batch, torch.tensor([2, 0, 0]))


def test_labels_marked_invalid_are_ignored_whatever_they_hold(
    model: UniversalTemporalGNN, press_spec: SystemSpec, make_readings: MakeReadings
) -> None:
    batch = _batch([press_spec], make_readings)
    output = model.eval()(batch)
    targets = _targets(batch)
    valid = torch.tensor([True, False, True])
    clean = Targets(
        component_health=targets.component_health,
        health_valid=valid,
        fault_index=targets.fault_index,
        fault_valid=valid,
        rul_hours=targets.rul_hours,
        rul_valid=valid,
    )
    garbage = Targets(
        component_health=torch.where(valid, targets.component_health, torch.tensor(math.nan)),
        health_valid=valid,
        fault_index=torch.where(valid, targets.fault_index, torch.tensor(-7)),
        fault_valid=valid,
        rul_hours=torch.where(valid, targets.rul_hours, torch.tensor(math.inf)),
        rul_valid=valid,
    )
    expected = model_loss(output, batch, clean)
    for name, value in model_loss(output, batch, garbage).items():
        torch.testing.assert_close(value, expected[name], msg=name)


def test_without_labels_only_the_self_supervised_forecast_counts(
    model: UniversalTemporalGNN, press_spec: SystemSpec, make_readings: MakeReadings
) -> None:
    batch = _batch([press_spec], make_readings)
    losses = model_loss(
        model(batch), batch, _targets(batch, valid=False), LossWeights(forecast=2.0)
    )
    assert [float(losses[k].detach()) for k in ("health", "fault", "rul")] == [0.0, 0.0, 0.0]
    torch.testing.assert_close(losses["total"], 2.0 * losses["forecast"])
    losses["total"].backward()  # still connected to the graph
