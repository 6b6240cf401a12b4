"""What a newcomer meets first: misspelled variables warned about, the URLs actually used,
one duration syntax, and a window workers would refuse caught before publishing."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest
import typer

from cli.run_command import _run_seconds
from service.settings import known_variables, misspelled_variables

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def test_variables_that_look_like_settings_but_set_nothing_are_named_with_the_real_one() -> None:
    environ = {
        "GNN_BROKER_URL": "redis://elsewhere",  # one underscore
        "GNN_BATCHNG__MAX_WAIT_MS": "10",  # misspelled section
        "GNN_BATCHING__MAX_WAIT_MS": "10",  # right
        "GNN_DATABASE__URL_FILE": "/run/secrets/db",  # a secret file of a real setting
        "GNN_TEST_REDIS_URL": "redis://x",  # a deployment's own variable: left alone
        "PATH": "/bin",
    }
    assert misspelled_variables(environ) == [
        "GNN_BATCHNG__MAX_WAIT_MS sets nothing; did you mean GNN_BATCHING__MAX_WAIT_MS?",
        "GNN_BROKER_URL sets nothing; did you mean GNN_BROKER__URL?",
    ]
    assert {
        "GNN_BROKER__URL",
        "GNN_DATA_DIR",
        "GNN_SECURITY__MIN_WINDOW_STEPS",
    } <= known_variables()


def test_a_command_warns_on_stderr_and_still_runs(gnn_cli: CliRunner) -> None:
    done = gnn_cli("version", env={"GNN_BROKER_URL": "redis://elsewhere:6379/0"})
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == (
        "warning: GNN_BROKER_URL sets nothing; did you mean GNN_BROKER__URL?"
    )
    assert done.stdout.startswith("gnn-service ")


def test_config_show_prints_the_embedded_urls_it_would_use(gnn_cli: CliRunner) -> None:
    done = gnn_cli("config", "show")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["broker"]["url"].startswith("redis+socket://")
    assert shown["broker"]["url"].endswith("/.gnn-data/redis.sock")
    assert shown["broker"]["embedded"] is True
    assert shown["result_backend"]["url"].startswith("redis+socket://")
    assert shown["database"]["url"].startswith("sqlite+aiosqlite:///")


@pytest.mark.parametrize(("text", "seconds"), [("40", 40.0), ("40s", 40.0), ("2m", 120.0)])
def test_run_takes_seconds_or_a_duration(text: str, seconds: float) -> None:
    assert _run_seconds(text) == seconds


@pytest.mark.parametrize(("text", "words"), [("2s", "shorter than 5 s"), ("a while", "duration")])
def test_run_refuses_a_short_or_unreadable_duration(text: str, words: str) -> None:
    with pytest.raises(typer.BadParameter, match=words):
        _run_seconds(text)


def test_produce_refuses_a_window_workers_would_dead_letter_before_publishing(
    gnn_cli: CliRunner,
) -> None:
    done = gnn_cli("produce", "--system", "excavator", "--window", "4", "--duration", "1s")
    assert done.returncode == 2
    words = " ".join(done.stderr.replace("│", " ").split())  # out of rich's error box
    assert "4 steps is shorter than workers accept (8, GNN_SECURITY__MIN_WINDOW_STEPS)" in words
    assert "published" not in done.stdout
