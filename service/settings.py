"""Service settings: one pydantic-settings class, read once at the edge and passed in.

Every limit of the service is a field with a documented default, grouped in the section
models of :mod:`service.settings_sections` (re-exported here). Values come from,
highest precedence first: keyword arguments, environment variables (prefix ``GNN_``,
``__`` between nested names, e.g. ``GNN_BATCHING__MAX_WAIT_MS``), a ``.env`` file,
secret files (``GNN_<NAME>_FILE=/run/secrets/...`` holds the path of a file whose content,
without its trailing newline, is the value of ``GNN_<NAME>``: for URLs with passwords and the
Flower password, as Docker and Kubernetes secrets mount them), then the defaults below.
Nothing is read until ``Settings()`` is called.

With no settings at all the service runs on the embedded default: everything lives under
``data_dir`` (SQLite database, an embedded redis-server on a unix socket for the broker and
the result backend). Setting ``GNN_BROKER__URL``, ``GNN_RESULT_BACKEND__URL`` and
``GNN_DATABASE__URL`` switches to Redis and PostgreSQL.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from service.settings_sections import (
    BatchingSettings,
    BreakerSettings,
    BrokerSettings,
    DatabaseSettings,
    DiagnosisSettings,
    ModelSettings,
    ObservabilitySettings,
    ProducerSettings,
    ResultBackendSettings,
    SecuritySettings,
    SettingsSection,
    WorkerSettings,
)
from service.settings_sources import (
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    SECRET_FILE_SUFFIX,
    PlainEnvSource,
    SecretFileSource,
)

# The section models live in service.settings_sections; they are imported from here.
__all__ = [
    "ENV_NESTED_DELIMITER",
    "ENV_PREFIX",
    "BatchingSettings",
    "BreakerSettings",
    "BrokerSettings",
    "DatabaseSettings",
    "DiagnosisSettings",
    "ModelSettings",
    "ObservabilitySettings",
    "ProducerSettings",
    "ResultBackendSettings",
    "SecuritySettings",
    "Settings",
    "SettingsSection",
    "WorkerSettings",
    "describe_error",
    "env_name",
    "known_variables",
    "mask_url",
    "misspelled_variables",
]

_MASK = "***"


class Settings(BaseSettings):
    """Everything the service can be told. See docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    data_dir: Path = Field(
        default=Path(".gnn-data"), description="Home of the embedded default's files."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, environment, ``.env``, then ``GNN_*_FILE`` secret files."""
        return (
            init_settings,
            PlainEnvSource(settings_cls),
            dotenv_settings,
            SecretFileSource(settings_cls),
        )

    log_format: Literal["json", "console"] = Field(
        default="json", description="JSON lines, or a human format."
    )
    log_level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="Lowest level logged."
    )
    broker: BrokerSettings = BrokerSettings()
    result_backend: ResultBackendSettings = ResultBackendSettings()
    database: DatabaseSettings = DatabaseSettings()
    worker: WorkerSettings = WorkerSettings()
    batching: BatchingSettings = BatchingSettings()
    producer: ProducerSettings = ProducerSettings()
    breaker: BreakerSettings = BreakerSettings()
    diagnosis: DiagnosisSettings = DiagnosisSettings()
    model: ModelSettings = ModelSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    security: SecuritySettings = SecuritySettings()

    @model_validator(mode="after")
    def _redelivery_after_batches(self) -> Settings:
        worker = self.worker
        held = (
            worker.batch_hard_time_limit_s
            + worker.settle_budget_s
            + self.batching.max_wait_ms / 1000.0
        )
        if self.broker.visibility_timeout_s <= held:
            raise ValueError(
                f"broker.visibility_timeout_s ({self.broker.visibility_timeout_s}) must exceed "
                f"worker.batch_hard_time_limit_s + worker.settle_budget_s + "
                f"batching.max_wait_ms ({held:g} s), or messages a live worker holds are "
                "delivered twice"
            )
        return self

    @model_validator(mode="after")
    def _breaker_before_failed_for_good(self) -> Settings:
        if self.model.max_failures_per_snapshot <= self.breaker.failure_threshold:
            raise ValueError(
                f"model.max_failures_per_snapshot ({self.model.max_failures_per_snapshot}) "
                f"must exceed breaker.failure_threshold ({self.breaker.failure_threshold}), "
                "or a model failing on everything dead-letters healthy snapshots before the "
                "breaker opens"
            )
        return self

    @property
    def database_url(self) -> str:
        """The database URL in force."""
        if self.database.url is not None:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'gnn.db').absolute()}"

    def masked(self) -> dict[str, Any]:
        """The effective settings as JSON-ready data, secrets and URL passwords masked."""
        data = self.model_dump(mode="json")
        data["database"]["url"] = mask_url(self.database_url)
        for section in ("broker", "result_backend"):
            if data[section]["url"] is not None:
                data[section]["url"] = mask_url(data[section]["url"])
        data["observability"]["otlp_endpoint"] = (
            mask_url(data["observability"]["otlp_endpoint"])
            if data["observability"]["otlp_endpoint"]
            else None
        )
        for secret in ("flower_password", "signing_key_password"):
            if getattr(self.security, secret) is not None:
                data["security"][secret] = _MASK
        data["data_dir"] = str(self.data_dir.absolute())
        return data


def mask_url(url: str) -> str:
    """Replace the password of a URL with ``***``; other parts stay readable."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{_MASK}@{host}"))


def env_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable that sets the field at ``loc``.

    >>> env_name(("batching", "max_wait_ms"))
    'GNN_BATCHING__MAX_WAIT_MS'
    """
    names = [str(part) for part in loc if not isinstance(part, int)]
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(names).upper()


def known_variables() -> frozenset[str]:
    """Every variable that sets something: ``GNN_<FIELD>`` and ``GNN_<SECTION>__<FIELD>``
    (a section may also be given whole, as JSON, by ``GNN_<SECTION>``)."""
    names = set()
    for field, info in Settings.model_fields.items():
        names.add(env_name((field,)))
        section = info.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            names |= {env_name((field, sub)) for sub in section.model_fields}
    return frozenset(names)


def misspelled_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """``GNN_*`` variables that set nothing but look like one that does, one line each.

    A variable is reported when it names a known section with an unknown field, or when a
    known name is close to it (``GNN_BROKER_URL`` for ``GNN_BROKER__URL``); other ``GNN_*``
    variables (a deployment's own) are left alone. ``GNN_<NAME>_FILE`` secret files count as
    their ``GNN_<NAME>``.
    """
    known = known_variables()
    sections = {
        name.split(ENV_NESTED_DELIMITER)[0] for name in known if ENV_NESTED_DELIMITER in name
    }
    lines = []
    for name in sorted(os.environ if environ is None else environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        if upper.endswith(SECRET_FILE_SUFFIX) and upper[: -len(SECRET_FILE_SUFFIX)] in known:
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.85)
        if close:
            lines.append(f"{name} sets nothing; did you mean {close[0]}?")
        elif upper.split(ENV_NESTED_DELIMITER)[0] in sections and ENV_NESTED_DELIMITER in upper:
            lines.append(f"{name} sets nothing: no such field (docs/configuration.md)")
    return lines


def describe_error(error: ValidationError) -> str:
    """One line naming each invalid variable and the bound it broke."""
    problems = []
    for item in error.errors(include_url=False):
        name = env_name(item["loc"]) if item["loc"] else "GNN settings"
        message = item["msg"]
        value = item.get("input")
        shown = "" if isinstance(value, dict) or value is None else f" (got {value!r})"
        if name.endswith(("URL", "PASSWORD")):
            shown = ""
        problems.append(f"{name}: {message}{shown}")
    return "invalid setting " + "; ".join(problems)
