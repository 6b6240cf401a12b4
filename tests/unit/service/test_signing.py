"""SignatureVerifier and enable_signing against real keys and Celery's auth serializer."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest
from kombu.serialization import dumps
from signing_helpers import APP_SERVERS, Identity, make_identity

from service.errors import ConfigurationError, InvalidInput
from service.settings import SecuritySettings, Settings
from service.signing import SIGNED_CONTENT_TYPE, SignatureVerifier
from worker.app import create_app

BODY = [[{"snapshot_id": "s-1"}], {}, {"callbacks": None}]


@pytest.fixture
def producer(tmp_path: Path) -> Identity:
    return make_identity(tmp_path / "keys", "producer")


@pytest.fixture
def trusted(tmp_path: Path, producer: Identity) -> Path:
    directory = tmp_path / "trusted"
    directory.mkdir()
    shutil.copy(producer.certificate, directory / "producer.pem")
    return directory


def _signed(identity: Identity, tmp_path: Path, body: object = BODY) -> bytes:
    settings = Settings(
        data_dir=tmp_path,
        **APP_SERVERS,
        security={
            "signing_key_path": identity.key,
            "signing_certificate_path": identity.certificate,
        },
    )
    app = create_app(settings)
    assert app.conf.task_serializer == "auth"
    content_type, _, payload = dumps(body, serializer="auth")
    assert content_type == SIGNED_CONTENT_TYPE
    return payload if isinstance(payload, bytes) else payload.encode()


def test_a_signed_body_from_a_trusted_producer_yields_its_json(
    producer: Identity, trusted: Path, tmp_path: Path
) -> None:
    raw = _signed(producer, tmp_path)
    assert (
        SignatureVerifier(trusted).verify(raw)
        == b'[[{"snapshot_id": "s-1"}], {}, {"callbacks": null}]'
    )


def test_an_untrusted_signer_is_refused(trusted: Path, tmp_path: Path) -> None:
    intruder = make_identity(tmp_path / "other", "intruder")
    with pytest.raises(InvalidInput, match="unknown signer") as caught:
        SignatureVerifier(trusted).verify(_signed(intruder, tmp_path))
    assert caught.value.reason == "signature_invalid"


def test_a_tampered_body_is_refused(producer: Identity, trusted: Path, tmp_path: Path) -> None:
    envelope = base64.b64decode(_signed(producer, tmp_path))
    tampered = base64.b64encode(envelope.replace(b"s-1", b"s-2"))
    with pytest.raises(InvalidInput, match="bad signature") as caught:
        SignatureVerifier(trusted).verify(tampered)
    assert caught.value.reason == "signature_invalid"


@pytest.mark.parametrize("raw", [b"", b"not base64 at all!", base64.b64encode(b"a\x00\x01b")])
def test_garbage_is_not_a_signed_envelope(trusted: Path, raw: bytes) -> None:
    with pytest.raises(InvalidInput, match="not a signed envelope") as caught:
        SignatureVerifier(trusted).verify(raw)
    assert caught.value.reason == "signature_invalid"


def test_a_signed_pickle_is_refused_unread(
    producer: Identity, trusted: Path, tmp_path: Path
) -> None:
    raw = _signed(producer, tmp_path)
    signer, signature, _, encoding, body = base64.b64decode(raw).split(b"\x00\x01", 4)
    relabelled = base64.b64encode(
        b"\x00\x01".join([signer, signature, b"application/x-python-serialize", encoding, body])
    )
    with pytest.raises(InvalidInput, match="signed content type") as caught:
        SignatureVerifier(trusted).verify(relabelled)
    assert caught.value.reason == "unsupported_content_type"


def test_half_a_signing_configuration_is_a_configuration_error(
    producer: Identity, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path, **APP_SERVERS, security={"signing_key_path": producer.key}
    )
    with pytest.raises(ConfigurationError, match="needs both"):
        create_app(settings)


def test_an_empty_certificate_directory_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no certificate found"):
        SignatureVerifier(tmp_path)


def test_unsigned_json_is_refused_when_signatures_are_required(trusted: Path) -> None:
    from worker.messages import Incoming

    class _Message:
        def __init__(self) -> None:
            self.headers = {"id": "s-1", "task": "gnn.diagnose"}
            self.content_type = "application/json"
            self.body = b'[[{"snapshot_id": "s-1"}], {}, {}]'

    incoming = Incoming(_Message())
    incoming.prepare(SecuritySettings(), SignatureVerifier(trusted))
    with pytest.raises(InvalidInput, match="signed messages required") as caught:
        incoming.snapshot_data(SecuritySettings())
    assert caught.value.reason == "unsupported_content_type"


class _Received:
    """A signed message as the batch loop receives it, with headers of the test's choosing."""

    def __init__(self, body: bytes, **headers: object) -> None:
        self.headers = {"task": "gnn.diagnose", **headers}
        self.content_type = SIGNED_CONTENT_TYPE
        self.body = body


def test_a_captured_signed_body_cannot_be_replayed_under_another_id_or_deadline(
    producer: Identity, trusted: Path, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from pipeline_helpers import demo_snapshots

    from service.admission import parse_snapshot
    from worker.messages import Incoming
    from worker.pipeline import check_id, deadline_of

    deadline = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    snapshot = demo_snapshots(1, "signed")[0].model_copy(update={"deadline": deadline})
    raw = _signed(producer, tmp_path, [[snapshot.model_dump(mode="json")], {}, {}])
    verifier = SignatureVerifier(trusted)

    def receive(**headers: object) -> tuple[Incoming, object]:
        incoming = Incoming(_Received(raw, **headers))
        incoming.prepare(SecuritySettings(), verifier)
        return incoming, parse_snapshot(incoming.snapshot_data(SecuritySettings()))

    incoming, parsed = receive(id=snapshot.snapshot_id, expires=deadline.isoformat())
    check_id(incoming, parsed)  # as published: accepted
    assert deadline_of(incoming, parsed) == deadline
    incoming, parsed = receive(id="someone-else")
    with pytest.raises(InvalidInput, match=r"headers\.id") as caught:
        check_id(incoming, parsed)
    assert caught.value.reason == "header_mismatch"
    incoming, parsed = receive(id=snapshot.snapshot_id)  # expires header dropped
    assert deadline_of(incoming, parsed) == deadline  # the signed deadline still holds
    later = (deadline + timedelta(days=1)).isoformat()
    incoming, parsed = receive(id=snapshot.snapshot_id, expires=later)
    with pytest.raises(InvalidInput, match=r"headers\.expires") as caught:
        deadline_of(incoming, parsed)
    assert caught.value.reason == "header_mismatch"
