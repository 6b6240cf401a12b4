from __future__ import annotations

import pytest

from machines import Run, builtin_spec, generate
from training.data.runs import RunWindows, cut_runs, too_short_message
from training.errors import SplitError
from training.pipeline import contract_for
from training.validation_split import chronological_split, split_runs
from worker.model import FeatureContract


@pytest.fixture(scope="module")
def cnc_contract() -> FeatureContract:
    return contract_for([builtin_spec("cnc_machine")])


def _run(seed: int, seconds: float, fault: str | None = None) -> Run:
    faults = [f"{fault}@0s:step:1:1h"] if fault else []
    return generate("cnc_machine", duration_s=seconds, faults=faults, seed=seed)


@pytest.fixture(scope="module")
def runs(cnc_contract: FeatureContract) -> list[RunWindows]:
    """Eight 3-minute runs of 3 windows: four healthy, four with a worn tool."""
    named = [(f"healthy_{s}", _run(s, 180)) for s in range(4)]
    named += [(f"tool_{s}", _run(s, 180, "tool_wear")) for s in range(4, 8)]
    kept, short = cut_runs(named, cnc_contract, stride_s=60)
    assert not short
    return kept


def test_whole_runs_validate_chosen_by_the_seed(runs: list[RunWindows]) -> None:
    split = split_runs(runs, seed=0)
    assert split.method == "runs"
    assert len(split.val) == 2  # a fifth of eight, rounded
    train, val = {r.name for r in split.train}, {r.name for r in split.val}
    assert train.isdisjoint(val)
    assert train | val == {r.name for r in runs}
    assert {r.name for r in split_runs(runs, seed=0).val} == val
    chosen = {frozenset(r.name for r in split_runs(runs, seed=s).val) for s in range(6)}
    assert len(chosen) > 1
    # Validation gets a healthy and a faulty run while training keeps both kinds.
    assert sorted(r.conditions for r in split.val) == [("normal",), ("normal", "tool_wear")]


def test_the_count_of_validation_runs_is_an_option_with_bounds(runs: list[RunWindows]) -> None:
    assert len(split_runs(runs, seed=1, val_runs=3).val) == 3
    assert len(split_runs(runs, seed=1, val_fraction=0.5).val) == 4
    assert len(split_runs(runs[:2], seed=1).val) == 1  # at least one
    with pytest.raises(SplitError, match="--val-runs 8 must be between 1 and 7"):
        split_runs(runs, seed=1, val_runs=8)
    with pytest.raises(SplitError, match="not both"):
        split_runs(runs, seed=1, val_runs=2, val_fraction=0.2)


def test_one_run_splits_in_time_leaving_a_window_between_training_and_validation(
    cnc_contract: FeatureContract,
) -> None:
    (run,), _ = cut_runs([("one", _run(9, 1200))], cnc_contract, stride_s=30)
    split = split_runs([run], seed=0)
    assert split.method == "chronological"
    (train,), (val,) = split.train, split.val
    window_s = float(run.ends_s[0] - run.starts_s[0])
    assert train.ends_s.max() < val.starts_s.min() - window_s
    assert len(val.windows) == round(len(run.windows) * 0.2)
    assert "split in time" in split.note


def test_a_run_too_short_to_split_in_time_is_an_error(cnc_contract: FeatureContract) -> None:
    (run,), _ = cut_runs([("brief", _run(9, 120))], cnc_contract, stride_s=60)
    with pytest.raises(SplitError, match=r"only one run \(brief, 2 windows\)"):
        chronological_split(run, 0.2)


def test_short_runs_are_returned_with_what_the_window_needs(
    cnc_contract: FeatureContract,
) -> None:
    kept, short = cut_runs([("stub", _run(1, 45)), ("ok", _run(2, 90))], cnc_contract)
    assert [r.name for r in kept] == ["ok"]
    assert [s.describe() for s in short] == [
        "stub: 45 s long gives no window; the window needs 60 s (60 steps at 1 Hz)"
    ]
    assert "pass --window-steps 45 or fewer" in too_short_message(short, cnc_contract)
