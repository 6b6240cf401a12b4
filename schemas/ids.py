"""Identifier types shared by the contracts."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
]
"""Id of a machine, component, sensor or fault mode: 1-64 letters, digits, ``_`` or ``-``,
starting with a letter or digit (no dots, so ``health.<component>`` columns stay unambiguous).
"""

OpaqueId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")
]
"""Id chosen by a caller (snapshot id, system id): 1-128 characters of ``[A-Za-z0-9._:-]``."""

CorrelationId = Annotated[str, StringConstraints(max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$")]
"""Free-form id a caller uses to tie records to its own request: at most 128 characters, no
control characters (the databases and log lines cannot carry them safely)."""
