"""Where settings come from besides keyword arguments: the environment and mounted secrets.

``GNN_<NAME>_FILE=/run/secrets/...`` names a file whose content, without its trailing
newline, is the value of ``GNN_<NAME>`` (URLs with passwords, the Flower password), as
Docker and Kubernetes mount secrets. :class:`PlainEnvSource` reads the environment without
those variables and :class:`SecretFileSource` reads the files they name.

Both are pydantic-settings' public ``EnvSettingsSource`` (prefix, nesting, JSON for complex
fields, case folding) over a different set of variables: each constructor replaces the
source's public ``env_vars`` mapping, which is all the source reads values from. No private
method of pydantic-settings is overridden.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsError

ENV_PREFIX = "GNN_"
ENV_NESTED_DELIMITER = "__"
SECRET_FILE_SUFFIX = "_FILE"


def _is_secret_file_variable(name: str) -> bool:
    upper = name.upper()
    return upper.startswith(ENV_PREFIX) and upper.endswith(SECRET_FILE_SUFFIX)


class PlainEnvSource(EnvSettingsSource):
    """The environment without the ``GNN_*_FILE`` variables (those name secret files).

    Args:
        settings_cls: The settings class (its ``model_config`` gives prefix and nesting).
    """

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self.env_vars = {
            name: value
            for name, value in self.env_vars.items()
            if not _is_secret_file_variable(name)
        }


class SecretFileSource(EnvSettingsSource):
    """Values from files named by ``GNN_<NAME>_FILE`` variables (mounted secrets), read
    as if each were the variable ``GNN_<NAME>``.

    Args:
        settings_cls: The settings class (its ``model_config`` gives prefix and nesting).

    Raises:
        SettingsError: A named file cannot be read (the variable and path are named).
    """

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self.env_vars = _read_secret_files(os.environ)


def _read_secret_files(environ: Mapping[str, str]) -> dict[str, str | None]:
    """The content of every file a ``GNN_<NAME>_FILE`` variable of ``environ`` names, keyed
    by ``gnn_<name>`` (lower case, as the environment source folds names), without its
    trailing newline.

    Raises:
        SettingsError: A named file cannot be read (the variable and path are named).
    """
    values: dict[str, str | None] = {}
    for name, path in environ.items():
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
