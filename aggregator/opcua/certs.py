"""The server's application instance certificate, made once per data directory.

OPC UA clients pin the server by its certificate, so it must survive restarts: it is created
on the first start and reused after. The key is written 0600 from the first byte (os.open with
the mode, never chmod after the fact).

`write_self_signed` is the one place that knows what OPC UA wants in an application instance
certificate; the tests make their clients' and peers' certificates with it too."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_DIR = "opcua"
CERT_FILE = "server-cert.der"
KEY_FILE = "server-key.pem"
VALIDITY_DAYS = 3650


class CertificateError(Exception):
    """The certificate or key cannot be made or read; the message names the file."""


@dataclass(frozen=True)
class ServerCertificate:
    cert_path: Path
    key_path: Path
    created: bool


def application_uri(hostname: str | None = None) -> str:
    return f"urn:{hostname or socket.gethostname()}:setpoint:aggregator"


def ensure_server_certificate(data_dir: Path, host: str, app_uri: str) -> ServerCertificate:
    directory = data_dir / CERT_DIR
    cert_path = directory / CERT_FILE
    key_path = directory / KEY_FILE
    if cert_path.exists() and key_path.exists():
        _check_key_mode(key_path)
        return ServerCertificate(cert_path, key_path, created=False)
    if cert_path.exists() != key_path.exists():
        present = cert_path if cert_path.exists() else key_path
        raise CertificateError(
            f"{present} exists without its pair; remove it to create a new server certificate"
        )
    hostname = socket.gethostname()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        write_self_signed(
            cert_path,
            key_path,
            common_name=f"Setpoint aggregator ({hostname})",
            app_uri=app_uri,
            hosts=[hostname, "localhost", host],
        )
    except OSError as exc:
        raise CertificateError(
            f"cannot create the OPC UA server certificate in {directory}: {exc.strerror or exc}"
        ) from None
    return ServerCertificate(cert_path, key_path, created=True)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _check_key_mode(path: Path) -> None:
    if os.name == "posix" and path.stat().st_mode & 0o077:
        raise CertificateError(f"{path} is readable by other users; chmod 600 it")


def write_self_signed(
    cert_path: Path, key_path: Path, *, common_name: str, app_uri: str, hosts: Sequence[str]
) -> None:
    """A new key (PEM, 0600, never over an existing file) and its self-signed certificate (DER):
    what OPC UA applications check, the application URI and the `hosts` (names or IP addresses)
    in the subject alternative name, key and data encipherment, server and client use."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _self_signed(key, common_name, app_uri, hosts)
    _write_private(key_path, _pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))


def _alt_names(app_uri: str, hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(app_uri)]
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _self_signed(
    key: rsa.RSAPrivateKey, common_name: str, app_uri: str, hosts: Sequence[str]
) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Setpoint"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.SubjectAlternativeName(_alt_names(app_uri, hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
