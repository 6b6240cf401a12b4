"""Incoming messages: header checks and the outcome key, whatever a message holds."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from service.errors import InvalidInput
from service.settings import SecuritySettings
from worker.messages import MAX_KEY_CHARS, Incoming

BODY = json.dumps([[{"snapshot_id": "s-1"}], {}, {}]).encode()


class _Message:
    def __init__(self, headers: Any, body: Any = BODY, content_type: str = "application/json"):
        self.headers = headers
        self.body = body
        self.content_type = content_type
        self.delivery_info = "not an object"


def _received(headers: Any, body: Any = BODY) -> Incoming:
    incoming = Incoming(_Message(headers, body))
    incoming.prepare(SecuritySettings())
    return incoming


def _refusal(incoming: Incoming) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        incoming.snapshot_data(SecuritySettings())
    return caught.value


def test_the_key_is_the_id_header_else_the_body_id_else_the_hash() -> None:
    assert _received({"task": "gnn.diagnose", "id": "s-9"}).key == "s-9"
    assert _received({"task": "gnn.diagnose"}).key == "s-1"
    garbage = _received({"task": "gnn.diagnose"}, b"{not json")
    assert garbage.key == "sha256:" + hashlib.sha256(b"{not json").hexdigest()


@pytest.mark.parametrize("value", [12, "", "x" * (MAX_KEY_CHARS + 1), "tab\there", ["a"]], ids=repr)
def test_an_unusable_id_is_refused_and_keyed_by_the_hash(value: object) -> None:
    incoming = _received({"task": "gnn.diagnose", "id": value})
    refusal = _refusal(incoming)
    assert (refusal.reason, refusal.context["field"]) == ("invalid_header", "headers.id")
    assert incoming.key.startswith("sha256:")
    shown = incoming.shown_id
    assert shown is None or (len(shown) <= MAX_KEY_CHARS and shown.isprintable())


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"task": "celery.ping"}, "headers.task"),
        ({}, "headers.task"),
        ({"task": "gnn.diagnose", "expires": "yesterday"}, "headers.expires"),
        ({"task": "gnn.diagnose", "expires": 3}, "headers.expires"),
    ],
)
def test_a_wrong_task_or_unreadable_expires_names_the_header(
    headers: dict[str, Any], field: str
) -> None:
    refusal = _refusal(_received(headers))
    assert (refusal.reason, refusal.context["field"]) == ("invalid_header", field)


@pytest.mark.parametrize("headers", ["a string", [1, 2], None])
def test_headers_that_are_not_an_object_are_refused_not_raised(headers: Any) -> None:
    incoming = _received(headers)
    assert _refusal(incoming).reason == "invalid_header"  # no task header can be read
    assert incoming.redelivered is False
    assert incoming.published_at is None


def test_odd_header_values_never_raise() -> None:
    incoming = _received(
        {"task": "gnn.diagnose", "gnn_published_at": 10**400, "gnn_correlation_id": "a\x00b"}
    )
    assert incoming.published_at is None
    assert incoming.correlation_id == "a\\x00b"
    assert _received({"task": "gnn.diagnose"}, None).raw_body() == b""
