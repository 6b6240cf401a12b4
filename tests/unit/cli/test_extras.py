"""A serving install (no [train] extra): the serving commands work, and each command that needs
the extra ends with one line naming it and the install command."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

#: The ``gnn_cli`` fixture of tests/conftest.py.
CliRunner = Callable[..., "subprocess.CompletedProcess[str]"]

#: Commands that need scikit-learn or matplotlib, with arguments that would otherwise run.
TRAIN_COMMANDS = [
    ("train", "--system", "excavator", "--out", "m.gnnckpt"),
    ("evaluate", "m.gnnckpt"),
    ("benchmark", "skab", "--data-dir", "skab"),
    ("benchmark", "hydraulic", "--data-dir", "hydraulic"),
    ("benchmark", "cmapss", "--train", "train_FD001.txt"),
    ("demo", "plot", "--out", "run.png"),
]


@pytest.fixture
def without_train_extra(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH that makes ``import sklearn`` and ``import matplotlib`` fail, as on an
    install without the extra."""
    blocked = tmp_path / "blocked"
    for name in ("sklearn", "matplotlib"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name} blocked')\n")
    return {"PYTHONPATH": str(blocked)}


@pytest.mark.parametrize("args", TRAIN_COMMANDS, ids=lambda args: " ".join(args[:2]))
def test_a_command_needing_the_train_extra_names_it_in_one_line(
    gnn_cli: CliRunner, without_train_extra: dict[str, str], args: tuple[str, ...]
) -> None:
    done = gnn_cli(*args, env=without_train_extra)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "needs the [train] extra (sklearn, matplotlib not installed)" in lines[0]
    assert "pip install 'gnn-service[train]'" in lines[0]


def test_serving_commands_need_no_train_extra(
    gnn_cli: CliRunner, without_train_extra: dict[str, str]
) -> None:
    assert gnn_cli("--help", env=without_train_extra).returncode == 0
    shown = gnn_cli("config", "show", env=without_train_extra)
    assert shown.returncode == 0, shown.stderr
    assert "broker" in shown.stdout
    listed = gnn_cli("demo", "list", env=without_train_extra)
    assert listed.returncode == 0, listed.stderr
    assert "excavator" in listed.stdout
