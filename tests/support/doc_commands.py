"""The ``$ gnn-service`` commands of a doc's console blocks, with the output shown under each."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
SKAB = SHARED / "data" / "skab"


def doc_commands(doc: Path) -> list[tuple[list[str], list[str]]]:
    """Each ``$ gnn-service`` command of ``doc``'s console blocks (its arguments) with the
    output shown under it (lines up to the next command or the block's end)."""
    commands: list[tuple[list[str], list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", doc.read_text(encoding="utf-8"), re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                words = shlex.split(line[2:])
                assert words[0] == "gnn-service", line
                commands.append((words[1:], []))
            else:
                commands[-1][1].append(line)
    return commands


def doc_workdir(base: Path) -> Path:
    """A folder where ``docs`` and ``../shared`` resolve as from the repository root."""
    (base / "shared").symlink_to(SHARED)
    work = base / "work"
    work.mkdir()
    (work / "docs").symlink_to(ROOT / "docs")
    return work
