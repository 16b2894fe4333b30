"""A cluster's own certificate authority and the API server's serving certificate.

kubectl (client-go) sends a bearer token only over TLS: against an
``http://`` server it silently leaves the Authorization header out. So a
cluster whose API server wants a token serves HTTPS with a certificate from
this CA, and its kubeconfig carries the CA as ``certificate-authority-data``.

ECDSA P-256 keys: quick to make, and accepted by Go's and Python's TLS.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from boxkube.cluster.files import write_text_atomic

CA_NAME = "boxkube-ca"
APISERVER_NAME = "boxkube-apiserver"
DEFAULT_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class ServingCertificates:
    """Files of the CA certificate and of the API server's certificate and key (PEM)."""

    ca_cert: Path
    cert: Path
    key: Path


def serving_certificate_files(folder: Path) -> ServingCertificates:
    """Where generate_serving_certificates puts its files in `folder`."""
    return ServingCertificates(ca_cert=folder / "ca.crt", cert=folder / "apiserver.crt", key=folder / "apiserver.key")


def _sign(subject: x509.Name, issuer: x509.Name, public_key, signing_key, start: datetime.datetime,
          end: datetime.datetime, *, ca: bool, extensions: Sequence[x509.ExtensionType] = ()) -> x509.Certificate:
    """A certificate with the key usages of a CA (`ca=True`) or of a TLS end entity, plus `extensions`."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
    )  # fmt: skip
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _common_name(name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


def generate_serving_certificates(
    folder: Path, hosts: Sequence[str] = DEFAULT_HOSTS, valid_days: int = 3650
) -> ServingCertificates:
    """Make a CA and a serving certificate for `hosts` (IP addresses or DNS names) in `folder`."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=valid_days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _common_name(CA_NAME)
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = _sign(ca_name, ca_name, ca_key.public_key(), ca_key, start, end, ca=True, extensions=[ca_ski])

    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _sign(_common_name(APISERVER_NAME), ca_name, key.public_key(), ca_key, start, end, ca=False, extensions=[
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
        x509.SubjectAlternativeName(names),
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
    ])

    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    files = serving_certificate_files(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_text_atomic(files.ca_cert, ca_cert.public_bytes(pem).decode(), mode=0o644)
    write_text_atomic(files.cert, cert.public_bytes(pem).decode(), mode=0o644)
    write_text_atomic(files.key, key_pem.decode(), mode=0o600)
    # The CA's key is not kept: nothing else is signed with it.
    return files


def certificate_authority_data(ca_cert: Path) -> str:
    """The CA certificate as a kubeconfig's ``certificate-authority-data`` (base64 of the PEM)."""
    return base64.b64encode(ca_cert.read_bytes()).decode("ascii")
