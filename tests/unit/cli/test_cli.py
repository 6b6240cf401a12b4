from __future__ import annotations

import json
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def test_config_show_prints_effective_settings_with_secrets_masked(gnn_cli: CliRunner) -> None:
    done = gnn_cli(
        "config", "show",
        env={"GNN_DATABASE__URL": "postgresql+asyncpg://gnn:pw123@db/gnn",
             "GNN_BATCHING__MAX_WAIT_MS": "25"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["batching"]["max_wait_ms"] == 25
    assert shown["database"]["url"] == "postgresql+asyncpg://gnn:***@db/gnn"
    assert "pw123" not in done.stdout


@pytest.mark.parametrize("command", [("config", "show"), ("version",), ("db", "upgrade")])
def test_an_invalid_setting_ends_any_command_with_exit_2_and_one_line(
    gnn_cli: CliRunner, command: tuple[str, ...]
) -> None:
    done = gnn_cli(*command, env={"GNN_BATCHING__MAX_WAIT_MS": "abc"})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("invalid setting GNN_BATCHING__MAX_WAIT_MS:")
    assert "Traceback" not in done.stderr


def test_db_upgrade_creates_the_embedded_database(gnn_cli: CliRunner, tmp_path: Path) -> None:
    done = gnn_cli("db", "upgrade", env={"GNN_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 0, done.stderr
    assert "at revision None" not in done.stdout
    assert "at revision" in done.stdout
    assert (tmp_path / "data" / "gnn.db").exists()


# Every server error ends a command with one line on stderr, exit status 3, no traceback and
# no password. Connect timeouts and retries are cut short so that each command ends in seconds.
PASSWORD = "pw-Kq83s"
FAST = {
    "GNN_BROKER__CONNECT_TIMEOUT_S": "1",
    "GNN_BROKER__PUBLISH_RETRIES": "0",
    "GNN_DATABASE__RETRY_ATTEMPTS": "1",
    "GNN_WORKER__HEALTH_PORT": "0",
}
BROKER_COMMANDS = [
    ("ping", "--timeout", "2"),
    ("produce", "--system", "excavator", "--duration", "2s"),
]
DATABASE_COMMANDS = [("db", "upgrade"), ("diagnoses",), ("models", "list"), ("worker",)]


def assert_one_line(done: subprocess.CompletedProcess[str], status: int, *expected: str) -> str:
    """The command ended with ``status`` and exactly one line on stderr holding ``expected``,
    no traceback and no password anywhere."""
    output = done.stdout + done.stderr
    assert done.returncode == status, output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in output
    assert PASSWORD not in output
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def nothing_listens() -> dict[str, str]:
    """Settings naming a broker, result backend and database on ports where nothing listens."""
    from service.launcher import free_port

    redis_url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}"
    return {
        **FAST,
        "GNN_BROKER__URL": f"{redis_url}/0",
        "GNN_RESULT_BACKEND__URL": f"{redis_url}/1",
        "GNN_DATABASE__URL": f"postgresql+asyncpg://svc:{PASSWORD}@127.0.0.1:{free_port()}/gnn",
    }


@pytest.mark.parametrize("command", BROKER_COMMANDS, ids=" ".join)
def test_an_unreachable_broker_ends_a_command_with_one_line_and_exit_3(
    gnn_cli: CliRunner, nothing_listens: dict[str, str], command: tuple[str, ...]
) -> None:
    done = gnn_cli(*command, env=nothing_listens)
    assert_one_line(done, 3, "gnn-service: ", "broker", "Connection refused")


@pytest.mark.parametrize("command", DATABASE_COMMANDS, ids=" ".join)
def test_an_unreachable_database_ends_a_command_with_one_line_and_exit_3(
    gnn_cli: CliRunner, nothing_listens: dict[str, str], command: tuple[str, ...]
) -> None:
    # The worker asks the broker first: one that cannot be reached yet is Celery's to wait
    # for, so the worker goes on to its migrations, which end it.
    done = gnn_cli(*command, env=nothing_listens)
    assert_one_line(done, 3, "gnn-service: database ", "Connect call failed")


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[str]:
    """URL of a password-protected redis-server, with a wrong password in it."""
    from pipeline_helpers import PersistentRedis

    server = PersistentRedis(tmp_path / "redis", password="the-right-one")
    server.start()
    yield f"redis://:{PASSWORD}@127.0.0.1:{server.port}"
    server.stop()


@pytest.mark.parametrize("command", [*BROKER_COMMANDS, ("worker",)], ids=" ".join)
def test_a_wrong_redis_password_ends_a_command_with_one_line_and_exit_3(
    gnn_cli: CliRunner, locked_redis: str, tmp_path: Path, command: tuple[str, ...]
) -> None:
    env = {
        **FAST,
        "GNN_BROKER__URL": f"{locked_redis}/0",
        "GNN_RESULT_BACKEND__URL": f"{locked_redis}/1",
        "GNN_DATA_DIR": str(tmp_path / "data"),  # a worker would migrate only after the login
    }
    done = gnn_cli(*command, env=env)
    assert_one_line(done, 3, "gnn-service: ", "invalid username-password pair")


@pytest.mark.postgres
@pytest.mark.parametrize("command", [("db", "upgrade"), ("diagnoses",), ("worker",)], ids=" ".join)
def test_a_missing_postgresql_database_ends_a_command_with_one_line_and_exit_3(
    gnn_cli: CliRunner, postgres_server: str, redis_env: dict[str, str], command: tuple[str, ...]
) -> None:
    name = f"gnn_missing_{uuid.uuid4().hex[:8]}"
    url = make_url(postgres_server).set(
        drivername="postgresql+asyncpg", password=PASSWORD, database=name
    )
    env = {**FAST, **redis_env, "GNN_DATABASE__URL": url.render_as_string(hide_password=False)}
    done = gnn_cli(*command, env=env)
    assert_one_line(done, 3, f'gnn-service: database unavailable: database "{name}" does not exist')


def test_a_worker_on_a_taken_health_port_ends_with_one_line_naming_port_and_setting(
    gnn_cli: CliRunner, nothing_listens: dict[str, str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = gnn_cli("worker", env={**nothing_listens, "GNN_WORKER__HEALTH_PORT": str(port)})
    assert_one_line(
        done, 1, f"cannot listen on 127.0.0.1:{port}", "GNN_WORKER__HEALTH_PORT", "in use"
    )
    assert "health endpoint listening" not in done.stdout


@pytest.mark.parametrize(
    ("command", "password"),
    [(("flower",), ""), (("flower",), "   "), (("flower",), "two,parts"), (("run",), "")],
    ids=["flower-empty", "flower-blank", "flower-comma", "run-empty"],
)
def test_flower_refuses_an_empty_blank_or_comma_password(
    gnn_cli: CliRunner, nothing_listens: dict[str, str], password: str, command: tuple[str, ...]
) -> None:
    # Flower reads --basic-auth as comma-separated user:password pairs and admits whoever
    # sends one: "admin:" (no password), or the part after a comma on its own.
    done = gnn_cli(*command, env={**nothing_listens, "GNN_SECURITY__FLOWER_PASSWORD": password})
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("invalid setting GNN_SECURITY__FLOWER_PASSWORD: ")
