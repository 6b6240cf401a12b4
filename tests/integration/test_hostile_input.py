"""Hostile input against one live worker on Redis and PostgreSQL: raw queue items written as
a careless or hostile producer in any language would (redis-py only, following
docs/messages.md), each numbered case of the hostile-input report as its own test, and a
property-based fuzz suite; every test ends in a reconciliation of the database against the
result backend, an empty queue and an empty unacked record, and a live consumer.

The worker serves a real model with a real defect (tests/support/pipeline_fixtures.py,
``broken=True``): it diagnoses the demo machines and fails on any machine with another
component type, which is how a poison snapshot is made here.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hostile_helpers import LiveWorker, envelope, reconcile
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pipeline_fixtures import register_and_activate
from pipeline_helpers import demo_snapshots, task_body

from machines.catalog import builtin_spec
from schemas import Snapshot
from service.launcher import WorkerProcess

pytestmark = pytest.mark.integration

FUZZ_EXAMPLES = int(os.environ.get("GNN_FUZZ_EXAMPLES", "12"))
"""Generated message sets per run (``make test``: 12; a longer run: GNN_FUZZ_EXAMPLES=200)."""


@pytest.fixture(scope="module")
def live(redis_server: str, postgres_server: str) -> Iterator[LiveWorker]:
    """One worker on default settings (but for its test queue, health port and log level),
    shared by every test of the module: each test's input lands on top of the last."""
    from training.benchmarks.report import scratch_database

    data_dir = Path(tempfile.mkdtemp(prefix="gnn-"))
    suffix = uuid.uuid4().hex[:8]
    queue = f"test.hostile.{suffix}"
    with scratch_database(postgres_server, f"gnn_test_{uuid.uuid4().hex[:10]}") as url:
        env = {
            "GNN_DATA_DIR": str(data_dir),
            "GNN_LOG_LEVEL": "DEBUG",
            "GNN_BROKER__URL": f"{redis_server}/13",
            "GNN_RESULT_BACKEND__URL": f"{redis_server}/14",
            "GNN_WORKER__QUEUE": queue,
            "GNN_WORKER__CONTROL_QUEUE": f"test.hostile-control.{suffix}",
            "GNN_DATABASE__URL": url,
        }
        register_and_activate(env, "v1", broken=True)
        worker = WorkerProcess(
            env=env, hostname=f"hostile-{suffix}@%h", log_path=data_dir / "w.log"
        )
        worker.start()
        try:
            worker.wait_ready(timeout_s=90)
            live = LiveWorker(worker=worker, env=env, queue=queue, database_url=url)
            live.broker.delete("unacked", "unacked_index")
            yield live
        finally:
            worker.stop()


@pytest.fixture(autouse=True)
def _reconciled(live: LiveWorker) -> Iterator[None]:
    """After every test: the store and the result backend agree, the consumer lives."""
    yield
    reconcile(live)
    assert live.settled()
    assert live.wait_alive() == (200, 200), live.worker.log_tail(40)


@pytest.fixture(scope="module")
def snapshots() -> list[Snapshot]:
    """Valid demo snapshots (excavator) to build messages from."""
    return demo_snapshots(8, "hostile")


def _snapshot(template: Snapshot, snapshot_id: str, **update: Any) -> dict[str, Any]:
    data = template.model_dump(mode="json")
    data.update(snapshot_id=snapshot_id, **update)
    return data


def _message(live: LiveWorker, snapshot: Any, *, key: str | None = None, **headers: Any) -> bytes:
    header = {"task": "gnn.diagnose", "lang": "py", **headers}
    if key is not None:
        header["id"] = key
    return envelope(task_body(snapshot), queue=live.queue, headers=header)


def _poison(template: Snapshot, snapshot_id: str) -> dict[str, Any]:
    """A valid snapshot of an inline machine whose component type the broken model fails on."""
    spec = builtin_spec("excavator").model_dump(mode="json")
    for component in spec["components"]:
        component["type"] = "flux_capacitor"
    spec["name"] = "mystery-machine"
    return _snapshot(template, snapshot_id, spec=spec)


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# 1. One message stopped diagnosis on every worker -----------------------------------------


def test_1_a_long_header_id_with_an_invalid_body_is_dead_lettered(live: LiveWorker) -> None:
    long_id = "x" * 300
    live.push(
        [
            envelope(
                b'{"not": json', queue=live.queue, headers={"task": "gnn.diagnose", "id": long_id}
            )
        ]
    )
    live.wait_settled(set())
    rows = live.query(
        "SELECT message_key, snapshot_id, reason FROM dead_letters WHERE snapshot_id = :cut",
        cut=long_id[:256],
    )
    assert len(rows) == 1, rows
    key, shown, reason = rows[0]
    assert key.startswith("sha256:")
    assert shown == long_id[:256]
    assert reason == "invalid_header"


def test_1_a_string_delivery_info_is_dead_lettered_not_lost(
    live: LiveWorker, snapshots: list[Snapshot]
) -> None:
    snapshot_id = _uid("dinfo")
    item = envelope(
        task_body(_snapshot(snapshots[0], snapshot_id)),
        queue=live.queue,
        headers={"task": "gnn.diagnose", "id": snapshot_id},
        delivery_info="not an object",
    )
    live.push([item])
    live.wait_settled({snapshot_id})
    assert live.outcomes({snapshot_id}) == {snapshot_id: "dead_lettered"}
    assert live.backend_outcome(snapshot_id).dead_letter.reason == "malformed_envelope"


# 2 and 3. A poison snapshot among healthy ones -------------------------------------------


def test_2_3_a_poison_snapshot_is_isolated_and_failed_for_good_healthy_ones_diagnosed(
    live: LiveWorker, snapshots: list[Snapshot]
) -> None:
    poison_id = _uid("poison")
    healthy = [_uid(f"healthy{i}") for i in range(240)]
    items = [_message(live, _poison(snapshots[0], poison_id), key=poison_id)]
    items += [
        _message(live, _snapshot(snapshots[i % len(snapshots)], key), key=key)
        for i, key in enumerate(healthy)
    ]
    live.push(items)
    live.wait_settled({poison_id, *healthy}, timeout_s=90)
    found = live.outcomes({poison_id, *healthy})
    assert found.pop(poison_id) == "dead_lettered"
    assert set(found.values()) == {"diagnosed"}, found
    record = live.backend_outcome(poison_id).dead_letter
    assert record.reason == "model_failed"
    assert "alone 6 times" in record.detail


# 5. Messages with no outcome, or looping for ever ----------------------------------------


@pytest.mark.parametrize(
    "item",
    [
        b"\x00\xffnot json at all",
        b'["a", "json", "list"]',
        b'"a json string"',
        b'{"body": 1, "properties": {"delivery_tag": "t"}}',
    ],
    ids=["bytes", "list", "string", "no-envelope"],
)
def test_5_an_item_that_is_no_envelope_is_dead_lettered_by_its_hash(
    live: LiveWorker, item: bytes
) -> None:
    import hashlib

    key = f"sha256:{hashlib.sha256(item).hexdigest()}"
    live.push([item])
    live.wait_settled({key})
    assert live.backend_outcome(key).dead_letter.reason == "malformed_envelope"


def test_5_a_body_that_is_not_base64_is_dead_lettered_once_not_looped(live: LiveWorker) -> None:
    snapshot_id = _uid("b64")
    item = envelope(
        b"%%% not base64 %%%",
        queue=live.queue,
        headers={"task": "gnn.diagnose", "id": snapshot_id},
        base64_body=False,
    )
    live.push([item])
    live.wait_settled({snapshot_id})
    record = live.backend_outcome(snapshot_id).dead_letter
    assert record.reason == "malformed_envelope"
    assert "kombu could not read it" in record.detail


# 6. Results disagreed with the database, or were overwritten -----------------------------


def test_6_two_snapshots_with_one_id_get_the_first_stored_outcome_everywhere(
    live: LiveWorker, snapshots: list[Snapshot]
) -> None:
    snapshot_id = _uid("twin")
    first = _snapshot(snapshots[0], snapshot_id, system_id="first-machine")
    second = _snapshot(snapshots[1], snapshot_id, system_id="second-machine")
    live.push([_message(live, first, key=snapshot_id)])
    live.wait_settled({snapshot_id})
    live.push([_message(live, second, key=snapshot_id)])
    live.wait_settled({snapshot_id})
    assert live.backend_outcome(snapshot_id).diagnosis.system_id == "first-machine"
    (count,) = live.query("SELECT count(*) FROM diagnoses WHERE snapshot_id = :k", k=snapshot_id)[0]
    assert count == 1


def test_6_garbage_under_a_diagnosed_id_changes_nothing(
    live: LiveWorker, snapshots: list[Snapshot]
) -> None:
    snapshot_id = _uid("victim")
    live.push([_message(live, _snapshot(snapshots[0], snapshot_id), key=snapshot_id)])
    live.wait_settled({snapshot_id})
    live.push(
        [
            envelope(
                b"garbage", queue=live.queue, headers={"task": "gnn.diagnose", "id": snapshot_id}
            )
        ]
    )
    live.wait_settled({snapshot_id})
    assert live.backend_outcome(snapshot_id).outcome == "diagnosed"
    assert live.query(
        "SELECT count(*) FROM dead_letters WHERE message_key = :k", k=snapshot_id
    ) == [(0,)]


def test_6_a_header_id_that_differs_from_the_body_is_a_dead_letter(
    live: LiveWorker, snapshots: list[Snapshot]
) -> None:
    victim, attacker = _uid("victim"), _uid("body")
    live.push([_message(live, _snapshot(snapshots[0], attacker), key=victim)])
    live.wait_settled({victim})
    record = live.backend_outcome(victim).dead_letter
    assert record.reason == "header_mismatch"
    assert "headers.id" in record.detail
    assert record.field == "headers.id"  # its own attribute, in the backend and the database
    assert live.query("SELECT field FROM dead_letters WHERE message_key = :k", k=victim) == [
        ("headers.id",)
    ]
    assert live.outcomes({attacker}) == {}


def test_6_a_redelivery_past_its_deadline_keeps_the_diagnosis(
    live: LiveWorker, snapshots: list[Snapshot]
) -> None:
    snapshot_id = _uid("late")
    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    live.push([_message(live, _snapshot(snapshots[0], snapshot_id), key=snapshot_id, expires=soon)])
    live.wait_settled({snapshot_id})
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    live.push([_message(live, _snapshot(snapshots[0], snapshot_id), key=snapshot_id, expires=past)])
    live.wait_settled({snapshot_id})
    assert live.backend_outcome(snapshot_id).outcome == "diagnosed"
    assert live.query("SELECT count(*) FROM expirations WHERE snapshot_id = :k", k=snapshot_id) == [
        (0,)
    ]


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"task": "celery.ping"}, "headers.task"),
        ({"task": None}, "headers.task"),
        ({"expires": "yesterday"}, "headers.expires"),
        ({"expires": 12}, "headers.expires"),
    ],
    ids=["other-task", "no-task", "expires-word", "expires-number"],
)
def test_6_a_wrong_task_or_unreadable_expires_is_a_dead_letter_naming_the_header(
    live: LiveWorker, snapshots: list[Snapshot], headers: dict[str, Any], field: str
) -> None:
    snapshot_id = _uid("header")
    live.push([_message(live, _snapshot(snapshots[0], snapshot_id), key=snapshot_id, **headers)])
    live.wait_settled({snapshot_id})
    record = live.backend_outcome(snapshot_id).dead_letter
    assert record.reason == "invalid_header"
    assert record.detail.startswith(field), record.detail
    assert record.field == field


# The fuzz suite ---------------------------------------------------------------------------

_ID_POOL = st.sampled_from(["a", "b", "c", "d"])
_BAD_IDS = st.one_of(
    st.integers(), st.just(""), st.text(min_size=257, max_size=400), st.just("tab\there"),
    st.lists(st.integers(), max_size=2),
)  # fmt: skip
_JSONISH = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _body(draw: st.DrawFn, kind: str, snapshot: dict[str, Any], prefix: str) -> bytes:
    """A message body of ``kind``: a valid snapshot, or one of the ways a body goes wrong."""
    readings = dict(snapshot["window"]["readings"])
    first = next(iter(readings))
    readings[first] = readings[first][:-3]
    build = {
        "valid": lambda: task_body(snapshot),
        "other-id": lambda: task_body(dict(snapshot, snapshot_id=f"{prefix}-other")),
        "garbage": lambda: draw(st.binary(max_size=64)),
        "json": lambda: json.dumps(draw(_JSONISH)).encode(),
        "huge": lambda: b"[" + b" " * 1_000_100 + b"]",
        "nul": lambda: task_body(dict(snapshot, correlation_id="a\u0000b")),
        "ragged": lambda: task_body(
            dict(snapshot, window=dict(snapshot["window"], readings=readings))
        ),
        "empty": lambda: b"",
    }
    return build[kind]()


def _headers(draw: st.DrawFn, snapshot_id: str, id_kind: str, extra: str) -> dict[str, Any]:
    """Celery headers with the id as ``id_kind`` says and one ``extra`` change."""
    headers: dict[str, Any] = {"task": "gnn.diagnose", "lang": "py"}
    if id_kind == "same":
        headers["id"] = snapshot_id
    elif id_kind == "bad":
        headers["id"] = draw(_BAD_IDS)
    changes: dict[str, Any] = {
        "task": ("task", st.none() | st.text(max_size=10) | st.integers()),
        "expires": (
            "expires",
            st.text(max_size=12) | st.integers() | st.just("2020-01-01T00:00:00"),
        ),
        "future": ("expires", st.just((datetime.now(UTC) + timedelta(hours=1)).isoformat())),
        "correlation": ("gnn_correlation_id", _JSONISH),
        "traceparent": ("traceparent", st.text(max_size=60) | st.integers()),
    }
    if extra in changes:
        name, values = changes[extra]
        headers[name] = draw(values)
    return headers


@st.composite
def _messages(
    draw: st.DrawFn, template: dict[str, Any], queue: str, prefix: str
) -> tuple[bytes, str | None, bool, bool]:
    """One raw queue item; the outcome key it is or may be answered under (None: a hash
    key the test does not predict); whether that key is certain (a usable id header on a
    readable envelope); whether it is a valid snapshot message."""
    snapshot_id = f"{prefix}-{draw(_ID_POOL)}"
    snapshot = dict(template, snapshot_id=snapshot_id, system_id=f"m-{draw(st.integers(0, 3))}")
    body_kind = draw(st.sampled_from(_BODY_KINDS))
    body = _body(draw, body_kind, snapshot, prefix)
    id_kind = draw(st.sampled_from(["same", "same", "same", "missing", "bad"]))
    extra = draw(st.sampled_from(["none", "none", *_EXTRAS]))
    headers = _headers(draw, snapshot_id, id_kind, extra)
    envelope_kind = draw(
        st.sampled_from(["kombu"] * 8 + ["headers-list", "dinfo-string", "tag-number", "raw"])
    )
    content_type = draw(
        st.sampled_from(["application/json"] * 6 + ["application/x-python-serialize", "text/plain"])
    )
    if envelope_kind == "raw":
        return body, None, False, False
    item = envelope(
        body,
        queue=queue,
        headers=[1, 2] if envelope_kind == "headers-list" else headers,
        content_type=content_type,
        delivery_info="x" if envelope_kind == "dinfo-string" else None,
        tag=7 if envelope_kind == "tag-number" else None,
    )
    # An envelope kombu cannot take is still answered under its header id when its headers
    # are an object (docs/messages.md).
    readable_id = id_kind == "same" and envelope_kind != "headers-list"
    valid = (
        readable_id
        and envelope_kind == "kombu"
        and body_kind == "valid"
        and content_type == "application/json"
        and extra in {"none", "future", "correlation", "traceparent"}
    )
    if readable_id:
        return item, snapshot_id, True, valid
    # Without an id header, a body that decodes is keyed by its snapshot_id: it may take
    # the id of a valid message (the first stored outcome is the id's only one).
    contested = id_kind == "missing" and body_kind in {"valid", "ragged"}
    return item, snapshot_id if contested else None, False, False


_BODY_KINDS = [
    "valid",
    "valid",
    "valid",
    "other-id",
    "garbage",
    "json",
    "empty",
    "huge",
    "nul",
    "ragged",
]
_EXTRAS = ["task", "expires", "future", "correlation", "traceparent"]


@pytest.mark.timeout(120 + 8 * FUZZ_EXAMPLES)  # each example runs against the live worker
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,  # a fixed seed: the same message sets on every run
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example runs a live worker
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
@given(data=st.data())
def test_fuzz_every_message_gets_one_outcome_and_results_agree(
    live: LiveWorker, snapshots: list[Snapshot], data: st.DataObject
) -> None:
    prefix = _uid("fz")
    template = snapshots[0].model_dump(mode="json")
    drawn = data.draw(st.lists(_messages(template, live.queue, prefix), min_size=5, max_size=30))
    before = len(live.outcomes())
    live.push([item for item, _, _, _ in drawn])
    keys = {key for _, key, certain, _ in drawn if certain and key is not None}
    live.wait_settled(keys)
    found = live.outcomes(keys)
    by_key: dict[str, list[bool]] = {}
    for _, key, _, valid in drawn:
        if key is not None:
            by_key.setdefault(key, []).append(valid)
    for key, validity in by_key.items():
        if all(validity):  # every message of the id is a valid snapshot: it is diagnosed
            assert found[key] == "diagnosed", (key, live.backend_outcome(key).model_dump())
    counts = reconcile(live)
    assert counts["outcomes"] - before <= len(drawn)
    assert live.settled()
    assert live.alive()[0] == 200
    _FUZZ_TOTALS["messages"] += len(drawn)
    _FUZZ_TOTALS["outcomes"] += counts["outcomes"] - before


_FUZZ_TOTALS = {"messages": 0, "outcomes": 0}


def test_fuzz_totals(live: LiveWorker) -> None:
    """Runs after the fuzz test (file order): the store reconciles as a whole, and the
    counts go to ``GNN_FUZZ_REPORT`` (a JSON file) when it is set."""
    counts = reconcile(live)
    assert _FUZZ_TOTALS["messages"] > 0 or FUZZ_EXAMPLES == 0
    target = os.environ.get("GNN_FUZZ_REPORT")
    if target:
        report = {"examples": FUZZ_EXAMPLES, **_FUZZ_TOTALS, "store": counts, "mismatches": 0}
        Path(target).write_text(json.dumps(report, indent=2) + "\n")
