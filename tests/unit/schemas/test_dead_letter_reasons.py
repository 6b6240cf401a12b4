"""Every dead-letter reason the code can produce is a DeadLetterReason and is in the exported
JSON Schemas that producers in other languages validate against."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from schemas import DeadLetterReason

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("schemas", "producer", "worker", "training")


_RECORD_CALLS = {"InvalidInput", "DeadLetter", "dead_letter", "_invalid"}


def _callee(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _reasons_in_code() -> dict[str, list[str]]:
    """Reason codes named in the source: ``DeadLetterReason.X`` and ``reason="..."``."""
    found: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            where = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text(), filename=where)):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "DeadLetterReason"
                    and node.attr.isupper()
                ):
                    found.setdefault(f"member {node.attr}", []).append(where)
                elif isinstance(node, ast.Call) and _callee(node.func) in _RECORD_CALLS:
                    for keyword in node.keywords:
                        value = keyword.value
                        if (
                            keyword.arg == "reason"
                            and isinstance(value, ast.Constant)
                            and isinstance(value.value, str)
                        ):
                            found.setdefault(value.value, []).append(where)
    return found


def test_every_reason_named_in_the_code_is_a_dead_letter_reason() -> None:
    members = set(DeadLetterReason.__members__)
    values = {reason.value for reason in DeadLetterReason}
    found = _reasons_in_code()
    unknown = {
        name: places
        for name, places in found.items()
        if (
            name.removeprefix("member ") not in members
            if name.startswith("member ")
            else name not in values
        )
    }
    assert not unknown, unknown
    # The scan sees the producing code: at least the codes the worker itself raises.
    assert {"member MODEL_FAILED", "member MALFORMED_ENVELOPE", "member HEADER_MISMATCH"} <= set(
        found
    )


def test_the_exported_schemas_list_every_reason() -> None:
    values = sorted(reason.value for reason in DeadLetterReason)
    letter = json.loads((ROOT / "docs/schemas/dead_letter.schema.json").read_text())
    assert sorted(letter["$defs"]["DeadLetterReason"]["enum"]) == values
    outcome = json.loads((ROOT / "docs/schemas/outcome.schema.json").read_text())
    assert sorted(outcome["$defs"]["DeadLetterReason"]["enum"]) == values
