"""docs/configuration.md, generated from the fields of :class:`~service.settings.Settings`.

``gnn-service config docs`` writes it, and a test keeps the file equal to
:func:`configuration_doc`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.settings import Settings, SettingsSection, env_name


def settings_reference() -> str:
    """Markdown table of every setting: variable, default, bounds, meaning.

    docs/configuration.md is generated from this (``gnn-service config docs``), and a test
    keeps the two equal.
    """
    rows = ["| variable | default | constraints | meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, SettingsSection):
            for sub_name, sub_field in annotation.model_fields.items():
                rows.append(_reference_row((name, sub_name), sub_field))
        else:
            rows.append(_reference_row((name,), field))
    return "\n".join(rows) + "\n"


def _reference_row(loc: tuple[str, ...], field: Any) -> str:
    default = field.default
    if isinstance(default, Path):
        default = str(default)
    shown = "unset" if default is None else f"`{default}`"
    constraints = []
    for item in field.metadata:
        for attribute, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            bound = getattr(item, attribute, None)
            if bound is not None:
                constraints.append(f"{symbol} {bound}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            constraints.append(f"matches `{pattern}`".replace("|", "\\|"))
    literal = getattr(field.annotation, "__args__", None)
    if literal and all(isinstance(v, str) for v in literal):
        constraints.append("one of " + ", ".join(f"`{v}`" for v in literal))
    meaning = (field.description or "").replace("|", "\\|")
    return f"| `{env_name(loc)}` | {shown} | {', '.join(constraints)} | {meaning} |"


_DOC_HEAD = """# Configuration

Generated from `service/settings.py` and `service/settings_sections.py` by
`gnn-service config docs`; a test keeps it current.

Settings are read, highest precedence first, from keyword arguments (tests, embedding code),
environment variables, a `.env` file in the working directory, then the defaults below.
Nested names are joined with `__`: `GNN_BATCHING__MAX_WAIT_MS=30`. An invalid value stops
any `gnn-service` command with exit status 2 and one line naming the variable and the bound.
A `GNN_*` variable that sets nothing but is close to one that does (`GNN_BROKER_URL` for
`GNN_BROKER__URL`) is named in a warning on stderr by every command, with the real name.
`gnn-service config show` prints the effective values with passwords masked, and for an
unset broker, result backend or database the embedded one it uses (`"embedded": true`).

With nothing set, the service runs on the embedded default under `GNN_DATA_DIR`: a SQLite
database file and an embedded redis-server on a unix socket for the broker and the result
backend. Set `GNN_BROKER__URL`, `GNN_RESULT_BACKEND__URL` and `GNN_DATABASE__URL` for Redis
and PostgreSQL.

"""


def configuration_doc() -> str:
    """The full text of docs/configuration.md."""
    return _DOC_HEAD + settings_reference()
