"""Validation issues as ``(path, message)`` pairs, with paths written like ``a[3].b``.

Every error a contract reports, whether pydantic found it while parsing the structure or a
cross-reference check found it afterwards, is turned into the same shape here so that a user
reads ``connections[3].target: unknown component 'pmp'`` whatever the cause.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import ValidationError

Issue = tuple[str, str]
"""One problem: the path of the offending field and a human message."""

ROOT_PATH = "<root>"
"""Path used for a problem that concerns the whole document rather than one field."""

AT_CONTEXT_KEY = "at"
"""Key in a custom error's context naming a sub-path below the field that raised it."""


class IssueError(ValueError):
    """A validation failure that carries one or more located issues.

    Raised inside a validator it survives pydantic's wrapping (pydantic keeps the original
    exception in the error context), so :func:`validation_issues` can unpack it again.

    Args:
        issues: The problems, each ``(path, message)``; paths are relative to the object
            that raised the error.
    """

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues: list[Issue] = list(issues)
        super().__init__(format_issues(self.issues))


def format_location(loc: Sequence[int | str]) -> str:
    """Write a pydantic location tuple as a path.

    Args:
        loc: Location parts; integers are list indices, strings are field names or keys.

    Returns:
        The path, e.g. ``connections[3].target``; :data:`ROOT_PATH` for an empty location.
    """
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or ROOT_PATH


def join_path(prefix: str, path: str) -> str:
    """Append a relative path to a prefix, both in :func:`format_location` form."""
    if prefix == ROOT_PATH or not prefix:
        return path
    if path == ROOT_PATH or not path:
        return prefix
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def format_issues(issues: Iterable[Issue]) -> str:
    """Render issues one per line as ``path: message``."""
    return "\n".join(f"{path}: {message}" for path, message in issues)


def _lower_first(message: str) -> str:
    # pydantic capitalises its messages ("Field required"); ours are lower case mid-line.
    if len(message) > 1 and message[0].isupper() and not message[1].isupper():
        return message[0].lower() + message[1:]
    return message


def validation_issues(exc: ValidationError) -> list[Issue]:
    """Turn a pydantic ``ValidationError`` into located issues.

    Errors raised as :class:`IssueError` are expanded into their own issues below the field
    that raised them; a custom error whose context has an ``at`` key is placed at that
    sub-path; every other error keeps pydantic's location and message.

    Args:
        exc: The error raised by ``model_validate`` or a model constructor.

    Returns:
        The issues in pydantic's order.
    """
    issues: list[Issue] = []
    for error in exc.errors(include_url=False):
        path = format_location(error["loc"])
        context = error.get("ctx") or {}
        original = context.get("error")
        if isinstance(original, IssueError):
            issues.extend((join_path(path, sub), message) for sub, message in original.issues)
            continue
        if AT_CONTEXT_KEY in context:
            path = join_path(path, str(context[AT_CONTEXT_KEY]))
        if isinstance(original, ValueError | AssertionError) and str(original):
            message = str(original)
        else:
            message = error["msg"]
        issues.append((path, _lower_first(message)))
    return issues
