"""The ``gnn-service`` command line: the only package that imports every other one.

``main`` imports the commands when called, so that importing ``cli.errors`` stays cheap.
"""

from __future__ import annotations


def main() -> None:
    """Entry point of ``gnn-service`` and ``python -m cli``."""
    from cli.main import main as run

    run()
