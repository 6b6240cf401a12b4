"""Keys and self-signed certificates for the message-signing tests."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Identity:
    """A producer's PEM key and certificate files."""

    key: Path
    certificate: Path

    def env(self) -> dict[str, str]:
        return {
            "GNN_SECURITY__SIGNING_KEY_PATH": str(self.key),
            "GNN_SECURITY__SIGNING_CERTIFICATE_PATH": str(self.certificate),
        }


def make_identity(directory: Path, name: str, *, days: int = 30) -> Identity:
    """A fresh 2048-bit RSA key and a self-signed certificate for ``name``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    key_path = directory / f"{name}.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path = directory / f"{name}.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return Identity(key=key_path, certificate=cert_path)


# Servers named, so that building the app starts no embedded redis-server (nothing connects).
APP_SERVERS = {
    "broker": {"url": "redis://127.0.0.1:6379/15"},
    "result_backend": {"url": "redis://127.0.0.1:6379/15"},
}
