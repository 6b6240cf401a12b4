"""machines's public surface, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys

import machines


def test_every_public_name_is_importable() -> None:
    for name in machines.__all__:
        assert hasattr(machines, name), name


def test_importing_the_demo_package_loads_no_cli_or_plotting_library() -> None:
    code = (
        "import sys, machines; "
        "print(sorted(m for m in ('typer', 'rich', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"
