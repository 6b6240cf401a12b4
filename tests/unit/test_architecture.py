"""The package drawing of docs/architecture.md matches the import contracts, and no module
grows past the size a reader can hold."""

from __future__ import annotations

import itertools
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The longest module, in lines.
LONGEST_MODULE = 500


def _contract_layers() -> list[set[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    return [{name.strip() for name in layer.split("|")} for layer in layers]


def _drawn_edges() -> set[tuple[str, str]]:
    text = (ROOT / "docs" / "architecture.md").read_text("utf-8")
    block = re.search(r"```mermaid\n(.*?)```", text, re.S)
    assert block is not None, "docs/architecture.md has no mermaid package drawing"
    return set(re.findall(r"^\s*(\w+) --> (\w+)\s*$", block.group(1), re.M))


def test_the_drawing_is_the_layers_contract() -> None:
    layers = _contract_layers()
    expected = {
        (upper, lower)
        for above, below in itertools.pairwise(layers)
        for upper in above
        for lower in below
    }
    assert _drawn_edges() == expected


def test_every_package_is_in_the_contract() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    packages = set(config["tool"]["importlinter"]["root_packages"])
    assert set().union(*_contract_layers()) == packages
    assert packages == set(config["tool"]["mypy"]["packages"])


def test_no_module_is_longer_than_the_limit() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    lengths = {
        str(path.relative_to(ROOT)): len(path.read_text("utf-8").splitlines())
        for package in config["tool"]["importlinter"]["root_packages"]
        for path in (ROOT / package).rglob("*.py")
    }
    assert lengths, "no modules found"
    too_long = {path: n for path, n in lengths.items() if n > LONGEST_MODULE}
    assert not too_long, f"modules over {LONGEST_MODULE} lines: {too_long}"
