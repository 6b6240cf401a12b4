"""Optional message signing: workers accept only snapshots signed by trusted producers.

The wire format is Celery's ``auth`` serializer (content type ``application/data``), so any
Celery producer configured with ``task_serializer="auth"`` and the same key and certificate
interoperates: the body is base64 of ``signer``, ``signature``, the inner content type, the
inner content encoding and the inner body, joined by ``\\x00\\x01``; the signature (RSA-PSS)
covers the inner body bytes. Producers sign through Celery (:func:`enable_signing`); the
batch loop verifies with :class:`SignatureVerifier`, which also insists that the inner body
is JSON: a trusted key never makes the worker unpickle anything.

Enabled by settings: ``GNN_SECURITY__SIGNING_KEY_PATH`` and
``GNN_SECURITY__SIGNING_CERTIFICATE_PATH`` on producers, ``GNN_SECURITY__TRUSTED_CERTIFICATES``
(a directory of PEM certificates, or one file) on workers.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

from schemas import DeadLetterReason
from service.errors import ConfigurationError, InvalidInput
from service.settings import SecuritySettings

SIGNED_CONTENT_TYPE = "application/data"
"""Content type of Celery's ``auth`` serializer."""
_SEPARATOR = b"\x00\x01"
_FIELDS = 5


def enable_signing(app: Any, settings: SecuritySettings) -> None:
    """Make ``app`` sign every task it publishes (when a signing key is configured).

    Raises:
        ConfigurationError: Only one of key and certificate is set, or either is unreadable.
    """
    key_file, cert_file = settings.signing_key_path, settings.signing_certificate_path
    if key_file is None and cert_file is None:
        return
    if key_file is None or cert_file is None:
        raise ConfigurationError(
            "message signing needs both GNN_SECURITY__SIGNING_KEY_PATH and "
            "GNN_SECURITY__SIGNING_CERTIFICATE_PATH"
        )
    from celery.security.serialization import register_auth

    password = settings.signing_key_password
    try:
        register_auth(
            key=_read(key_file, "GNN_SECURITY__SIGNING_KEY_PATH"),
            key_password=password.get_secret_value().encode() if password else None,
            cert=_read(cert_file, "GNN_SECURITY__SIGNING_CERTIFICATE_PATH"),
            digest=settings.signing_digest,
            serializer="json",
        )
    except Exception as exc:  # celery.exceptions.SecurityError wraps the cause
        raise ConfigurationError(f"message signing: unusable key or certificate ({exc})") from None
    app.conf.task_serializer = "auth"


class SignatureVerifier:
    """Checks signed message bodies against trusted certificates.

    Args:
        trusted: A directory of PEM certificates (every file is read) or one PEM file.
        digest: The digest the producers sign with.

    Raises:
        ConfigurationError: The certificates cannot be read, or one has expired.
    """

    def __init__(self, trusted: Path, digest: str = "sha256") -> None:
        from celery.security.certificate import FSCertStore
        from celery.security.utils import get_digest_algorithm

        try:
            self._store = FSCertStore(str(trusted))
        except Exception as exc:
            raise ConfigurationError(
                f"GNN_SECURITY__TRUSTED_CERTIFICATES: cannot load {trusted} ({exc})"
            ) from None
        if not list(self._store.itercerts()):
            raise ConfigurationError(
                f"GNN_SECURITY__TRUSTED_CERTIFICATES: no certificate found at {trusted}"
            )
        self._digest = get_digest_algorithm(digest)

    def __repr__(self) -> str:
        return f"SignatureVerifier(certificates={len(list(self._store.itercerts()))})"

    def verify(self, raw: bytes) -> bytes:
        """The inner JSON body of a signed message whose signature checks out.

        Raises:
            InvalidInput: ``signature_invalid`` (unreadable envelope, unknown signer, bad
                signature, expired certificate) or ``unsupported_content_type`` (a signed
                body that is not JSON).
        """
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric import padding

        signer, signature, content_type, body = _unpack(raw)
        try:
            certificate = self._store[signer]
        except Exception:  # celery.exceptions.SecurityError
            raise _refused(f"unknown signer {signer!r}") from None
        if certificate.has_expired():
            raise _refused(f"certificate of {signer!r} has expired")
        pss = padding.PSS(mgf=padding.MGF1(self._digest), salt_length=padding.PSS.MAX_LENGTH)
        try:
            certificate.get_pubkey().verify(signature, body, pss, self._digest)
        except InvalidSignature:
            raise _refused(f"bad signature from {signer!r}") from None
        if content_type != "application/json":
            raise InvalidInput(
                f"signed content type {content_type!r} refused: only application/json",
                reason=DeadLetterReason.UNSUPPORTED_CONTENT_TYPE.value,
                field="<content-type>",
            )
        return body


def _unpack(raw: bytes) -> tuple[str, bytes, str, bytes]:
    try:
        fields = base64.b64decode(raw, validate=False).split(_SEPARATOR, _FIELDS - 1)
        if len(fields) != _FIELDS:
            raise ValueError(f"{len(fields)} fields, expected {_FIELDS}")
        signer = base64.b64decode(fields[0]).decode("utf-8")
        signature = base64.b64decode(fields[1])
        content_type = fields[2].decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise _refused(f"not a signed envelope ({exc})") from None
    return signer, signature, content_type, fields[4]


def _refused(detail: str) -> InvalidInput:
    return InvalidInput(
        f"message body: {detail}",
        reason=DeadLetterReason.SIGNATURE_INVALID.value,
        field="<signature>",
    )


def _read(path: Path, variable: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"{variable}: cannot read {path} ({exc.strerror})") from None
