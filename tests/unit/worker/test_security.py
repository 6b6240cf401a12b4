"""Security as tested: JSON-only serialization, credentials from settings or secret files,
and credentials never printed (config show, error lines of the CLI)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic_settings import SettingsError

from service.settings import Settings
from worker.app import create_app

CliRunner = Callable[..., subprocess.CompletedProcess[str]]

PASSWORD = "hunter2-Zq9"
UNREACHABLE = {
    "GNN_DATABASE__URL": f"postgresql+asyncpg://svc:{PASSWORD}@127.0.0.1:1/gnn",
    "GNN_DATABASE__RETRY_ATTEMPTS": "1",
    "GNN_BROKER__URL": f"redis://:{PASSWORD}@127.0.0.1:1/0",
    "GNN_RESULT_BACKEND__URL": f"redis://:{PASSWORD}@127.0.0.1:1/1",
    "GNN_BROKER__PUBLISH_RETRIES": "0",
    "GNN_BROKER__CONNECT_TIMEOUT_S": "1",
}


def test_only_json_is_sent_or_accepted_by_the_app(tmp_path: Path) -> None:
    from signing_helpers import APP_SERVERS  # no embedded redis-server for a config check

    app = create_app(Settings(data_dir=tmp_path, **APP_SERVERS))
    conf = app.conf
    assert conf.task_serializer == "json"
    assert conf.result_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert list(conf.result_accept_content) == ["json"]


def test_credentials_come_from_secret_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = tmp_path / "database-url"
    url.write_text(f"postgresql+asyncpg://svc:{PASSWORD}@db:5432/gnn\n")
    password = tmp_path / "flower-password"
    password.write_text(f"{PASSWORD}\n")
    monkeypatch.setenv("GNN_DATABASE__URL_FILE", str(url))
    monkeypatch.setenv("GNN_SECURITY__FLOWER_PASSWORD_FILE", str(password))
    settings = Settings()
    assert settings.database.url == f"postgresql+asyncpg://svc:{PASSWORD}@db:5432/gnn"
    assert settings.security.flower_password is not None
    assert settings.security.flower_password.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings.masked())


def test_an_environment_variable_wins_over_its_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "url"
    secret.write_text("redis://from-file:6379/0")
    monkeypatch.setenv("GNN_BROKER__URL_FILE", str(secret))
    monkeypatch.setenv("GNN_BROKER__URL", "redis://from-env:6379/0")
    assert Settings().broker.url == "redis://from-env:6379/0"


def test_an_unreadable_secret_file_names_the_variable_and_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope"
    monkeypatch.setenv("GNN_BROKER__URL_FILE", str(missing))
    with pytest.raises(
        SettingsError, match=f"GNN_BROKER__URL_FILE: cannot read secret file .*{missing.name}"
    ):
        Settings()


def test_config_show_masks_every_password(gnn_cli: CliRunner, tmp_path: Path) -> None:
    secret = tmp_path / "flower"
    secret.write_text(PASSWORD)
    done = gnn_cli(
        "config",
        "show",
        env={**UNREACHABLE, "GNN_SECURITY__FLOWER_PASSWORD_FILE": str(secret)},
    )
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert done.stdout.count("***") == 4  # three URLs and the Flower password


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("db", "upgrade"), "gnn-service: database migration failed: the database cannot be"),
        (("diagnoses",), "gnn-service: database read failed after 1 attempts"),
        (("produce", "--system", "excavator", "--duration", "2s"), "broker unreachable"),
    ],
)
def test_unreachable_servers_end_with_one_line_and_no_password(
    gnn_cli: CliRunner, args: tuple[str, ...], expected: str
) -> None:
    done = gnn_cli(*args, env=UNREACHABLE)
    output = done.stdout + done.stderr
    assert done.returncode == 3, output  # a server that cannot be reached (cli/errors.py)
    assert expected in output
    assert "Traceback" not in output
    assert PASSWORD not in output
