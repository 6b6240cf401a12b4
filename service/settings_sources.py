"""Where settings come from besides keyword arguments: the environment and mounted secrets.

``GNN_<NAME>_FILE=/run/secrets/...`` names a file whose content, without its trailing
newline, is the value of ``GNN_<NAME>`` (URLs with passwords, the Flower password), as
Docker and Kubernetes mount secrets. :class:`PlainEnvSource` reads the environment without
those variables and :class:`SecretFileSource` reads the files they name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic_settings import EnvSettingsSource, SettingsError

ENV_PREFIX = "GNN_"
ENV_NESTED_DELIMITER = "__"
SECRET_FILE_SUFFIX = "_FILE"


def _is_secret_file_variable(name: str) -> bool:
    upper = name.upper()
    return upper.startswith(ENV_PREFIX) and upper.endswith(SECRET_FILE_SUFFIX)


class PlainEnvSource(EnvSettingsSource):
    """The environment without the ``GNN_*_FILE`` variables (those name secret files)."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            name: value
            for name, value in super()._load_env_vars().items()
            if not _is_secret_file_variable(name)
        }


class SecretFileSource(EnvSettingsSource):
    """Values from files named by ``GNN_<NAME>_FILE`` variables (mounted secrets).

    Raises:
        SettingsError: A named file cannot be read (the variable and path are named).
    """

    def _load_env_vars(self) -> Mapping[str, str | None]:
        values: dict[str, str | None] = {}
        for name, path in os.environ.items():
            if not _is_secret_file_variable(name):
                continue
            try:
                content = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise SettingsError(
                    f"{name}: cannot read secret file {path!r} ({exc.strerror})"
                ) from None
            values[name[: -len(SECRET_FILE_SUFFIX)].lower()] = content.rstrip("\r\n")
        return values
