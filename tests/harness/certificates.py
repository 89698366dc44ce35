"""Throwaway X.509 certificates for TLS listeners on loopback: a private CA and leaves that
are valid, expired or self-signed (made with ``cryptography``, which Synapse depends on)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import attr
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"


@attr.s(auto_attribs=True, frozen=True)
class Pem:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(
    directory: Path, label: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Pem:
    cert_path, key_path = directory / f"{label}.crt", directory / f"{label}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Pem(cert_path, key_path)


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_certificates(directory: Path) -> dict[str, Pem]:
    """``ca``, and leaves for 127.0.0.1: ``valid`` and ``expired`` (signed by ``ca``),
    ``self_signed``."""
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(
        "Test CA",
        ca_key,
        "Test CA",
        ca_key,
        ca=True,
        not_before=now - day,
        not_after=now + 3650 * day,
    )
    pems = {"ca": _write(directory, "ca", ca, ca_key)}
    for label, issuer, start, end in (
        ("valid", "ca", now - day, now + 90 * day),
        ("expired", "ca", now - 30 * day, now - day),
        ("self_signed", None, now - day, now + 90 * day),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        if issuer is None:
            cert = _certificate(HOST, key, HOST, key, ca=False, not_before=start, not_after=end)
        else:
            cert = _certificate(
                HOST, key, "Test CA", ca_key, ca=False, not_before=start, not_after=end
            )
        pems[label] = _write(directory, label, cert, key)
    return pems
