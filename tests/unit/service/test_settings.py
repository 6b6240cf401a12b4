from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import Settings, describe_error, env_name, mask_url


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No GNN_* variable of the developer's shell and no .env of the checkout leaks in.
    for name in list(__import__("os").environ):
        if name.startswith("GNN_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_run_on_the_embedded_default() -> None:
    settings = Settings()
    assert settings.broker.url is None
    assert settings.result_backend.url is None
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.database_url.endswith(".gnn-data/gnn.db")
    assert settings.batching.max_wait_ms == 50


def test_precedence_is_init_then_env_then_dotenv_then_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "GNN_BATCHING__MAX_WAIT_MS=30\nGNN_BATCHING__MAX_BATCH_SNAPSHOTS=16\n"
        "GNN_WORKER__PREFETCH_MULTIPLIER=7\n"
    )
    assert Settings().batching.max_wait_ms == 30  # .env beats the default
    assert Settings().worker.prefetch_multiplier == 7
    monkeypatch.setenv("GNN_BATCHING__MAX_WAIT_MS", "20")
    settings = Settings()
    assert settings.batching.max_wait_ms == 20  # env beats .env
    assert settings.batching.max_batch_snapshots == 16  # .env still fills the rest
    init = Settings(batching={"max_wait_ms": 10})  # type: ignore[arg-type]
    assert init.batching.max_wait_ms == 10  # init beats env
    assert Settings().batching.max_batch_nodes == 8_192  # default where nobody spoke


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("GNN_BATCHING__MAX_WAIT_MS", "abc", "GNN_BATCHING__MAX_WAIT_MS: Input should be a valid integer"),
        ("GNN_BATCHING__MAX_WAIT_MS", "0", "GNN_BATCHING__MAX_WAIT_MS: Input should be greater than or equal to 1"),
        ("GNN_BATCHING__MAX_BATCH_SNAPSHOTS", "5000", "less than or equal to 4096"),
        ("GNN_MODEL__DEVICE", "tpu", "GNN_MODEL__DEVICE: String should match pattern"),
        ("GNN_LOG_FORMAT", "xml", "GNN_LOG_FORMAT: Input should be 'json' or 'console'"),
        ("GNN_BROKER__VISIBILITY_TIMEOUT_S", "20", "broker.visibility_timeout_s (20) must exceed worker.batch_hard_time_limit_s + worker.settle_budget_s + batching.max_wait_ms (25.05 s)"),
        ("GNN_WORKER__BATCH_SOFT_TIME_LIMIT_S", "40", "batch_soft_time_limit_s (40.0) must be below batch_hard_time_limit_s (15.0)"),
        ("GNN_MODEL__MAX_FAILURES_PER_SNAPSHOT", "5", "model.max_failures_per_snapshot (5) must exceed breaker.failure_threshold (5)"),
    ],
)  # fmt: skip
def test_invalid_values_name_the_variable_and_the_bound(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    line = describe_error(caught.value)
    assert expected in line
    assert "\n" not in line


def test_env_name_maps_nested_fields_to_variables() -> None:
    assert env_name(("batching", "max_wait_ms")) == "GNN_BATCHING__MAX_WAIT_MS"
    assert env_name(("data_dir",)) == "GNN_DATA_DIR"


def test_masked_hides_passwords_in_urls_and_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GNN_BROKER__URL", "redis://:s3cret@redis.internal:6379/0")
    monkeypatch.setenv("GNN_DATABASE__URL", "postgresql+asyncpg://gnn:hunter2@db:5432/gnn")
    monkeypatch.setenv("GNN_SECURITY__FLOWER_PASSWORD", "flowerpw")
    text = json.dumps(Settings().masked())
    for secret in ("s3cret", "hunter2", "flowerpw"):
        assert secret not in text
    assert "redis://:***@redis.internal:6379/0" in text
    assert "postgresql+asyncpg://gnn:***@db:5432/gnn" in text


def test_mask_url_leaves_urls_without_password_alone() -> None:
    assert mask_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert mask_url("postgresql://u:p@h/db") == "postgresql://u:***@h/db"


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.batching.max_wait_ms = 5  # type: ignore[misc]


def test_configuration_doc_is_current() -> None:
    from service.settings_doc import configuration_doc

    doc = Path(__file__).parents[3] / "docs" / "configuration.md"
    assert doc.read_text() == configuration_doc(), "run: gnn-service config docs"
