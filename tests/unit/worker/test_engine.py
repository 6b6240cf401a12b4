from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from machines.catalog import builtin_spec
from machines.generator import generate
from service.errors import ModelError
from worker.engine import ModelRunner, is_out_of_memory, resolve_device
from worker.model import (
    FeatureContract,
    ModelConfig,
    SpecGraph,
    UniversalTemporalGNN,
    encode_window,
)

# Runs in a child process whose address space is capped just above what a small batch needs,
# so that a large batch really fails to allocate inside the model's forward pass.
_OOM_SCRIPT = textwrap.dedent(
    """
    import json, resource, torch
    from machines.catalog import builtin_spec
    from machines.generator import generate
    from worker.engine import ModelRunner
    from worker.model import FeatureContract, ModelConfig, SpecGraph, UniversalTemporalGNN, encode_window

    torch.manual_seed(0)
    torch.set_num_threads(1)
    contract = FeatureContract()
    runner = ModelRunner(model=UniversalTemporalGNN(ModelConfig(), contract), contract=contract,
                         version="test:1", device=torch.device("cpu"))
    spec = builtin_spec("excavator")
    run = generate(spec, duration_s=120, seed=1)
    sample = encode_window(SpecGraph.build(spec, contract), run.readings[-60:], 1.0, contract)
    small, _ = runner.forward([sample] * 8)
    status = open("/proc/self/status").read().split("VmSize:")[1].split()[0]
    limit = int(status) * 1024 + 150 * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    outputs, stats = runner.forward([sample] * 512)
    same = bool(torch.allclose(outputs[0].component_health, small[0].component_health, atol=1e-5))
    print(json.dumps({"outputs": len(outputs), "splits": stats.splits,
                      "oom": stats.out_of_memory, "same": same}))
    """
)


def test_out_of_memory_splits_the_batch_and_every_snapshot_is_still_answered() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _OOM_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["outputs"] == 512
    assert report["oom"] >= 1  # the full batch really ran out of memory
    assert report["splits"] >= 1
    assert report["same"]  # split results equal unsplit ones


@pytest.fixture
def runner() -> ModelRunner:
    torch.manual_seed(0)
    contract = FeatureContract()
    model = UniversalTemporalGNN(ModelConfig(hidden=16, heads=2), contract)
    return ModelRunner(model=model, contract=contract, version="test:1", device=torch.device("cpu"))


def _sample(runner: ModelRunner, system: str = "cnc_machine"):  # type: ignore[no-untyped-def]
    spec = builtin_spec(system)
    run = generate(spec, duration_s=90, seed=2)
    return encode_window(
        SpecGraph.build(spec, runner.contract), run.readings[-60:], 1.0, runner.contract
    )


def test_forward_returns_one_output_per_snapshot_in_order(runner: ModelRunner) -> None:
    first, second = _sample(runner, "cnc_machine"), _sample(runner, "excavator")
    outputs, stats = runner.forward([first, second, first])
    assert [o.component_health.shape[0] for o in outputs] == [10, 12, 10]
    assert stats.splits == 0
    assert torch.allclose(outputs[0].component_health, outputs[2].component_health)


def test_a_model_producing_non_finite_outputs_fails_with_a_model_error(runner: ModelRunner) -> None:
    with torch.no_grad():
        for parameter in runner.model.parameters():
            if parameter.dim() > 1:
                parameter.fill_(3e38)
    with pytest.raises(ModelError, match="non-finite"):
        runner.forward([_sample(runner)])


def test_warm_up_marks_the_runner_warm(runner: ModelRunner) -> None:
    assert not runner.warm
    seconds = runner.warm_up([_sample(runner)] * 4, batches=2)
    assert runner.warm
    assert seconds > 0
    assert runner.memory() == {"allocated": 0, "reserved": 0, "peak": 0}


def test_devices_resolve_or_are_refused_by_name() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="GNN_MODEL__DEVICE=cuda:0: CUDA is not available"):
            resolve_device("cuda:0")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 GB"),
            True,
        ),
        (RuntimeError("could not create a primitive"), True),
        (MemoryError(), True),
        (RuntimeError("shape mismatch"), False),
        (ValueError("out of memory"), False),
    ],
)
def test_out_of_memory_is_recognised(error: BaseException, expected: bool) -> None:
    assert is_out_of_memory(error) is expected
