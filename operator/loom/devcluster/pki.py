"""Certificates and keys for the local control plane.

One CA signs the apiserver serving cert and an admin client cert (O=system:masters, so RBAC lets it do
anything); a separate RSA pair signs and verifies service-account tokens. Existing material is reused
so a restarted cluster keeps trusting the kubeconfig and the tokens it issued before.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVICE_IP = "10.0.0.1"
APISERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
APISERVER_IPS = ("127.0.0.1", SERVICE_IP)
ADMIN_USER = "loom-admin"
ADMIN_GROUP = "system:masters"

_CA_DAYS = 3650
_LEAF_DAYS = 365
_RENEW_BEFORE = datetime.timedelta(days=7)

SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Pki:
    """Paths of every PEM file the control plane and its clients read."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def apiserver_cert(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def apiserver_key(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def admin_cert(self) -> Path:
        return self.directory / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.directory / "admin.key"

    @property
    def sa_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.directory / "sa.pub"

    def files(self) -> tuple[Path, ...]:
        return (self.ca_cert, self.ca_key, self.apiserver_cert, self.apiserver_key,
                self.admin_cert, self.admin_key, self.sa_key, self.sa_pub)


def ensure_pki(directory: Path) -> Pki:
    """Create the PKI under ``directory`` unless a complete, unexpired one is already there."""
    pki = Pki(directory)
    if not _usable(pki):
        _generate(pki)
    return pki


def _usable(pki: Pki) -> bool:
    if not all(path.is_file() for path in pki.files()):
        return False
    horizon = datetime.datetime.now(datetime.timezone.utc) + _RENEW_BEFORE
    certs = (pki.ca_cert, pki.apiserver_cert, pki.admin_cert)
    return all(x509.load_pem_x509_certificate(p.read_bytes()).not_valid_after_utc > horizon for p in certs)


def _generate(pki: Pki) -> None:
    """Write a fresh PKI; ca.crt is removed first and written last so an interrupted run is redone."""
    pki.directory.mkdir(parents=True, exist_ok=True)
    pki.ca_cert.unlink(missing_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loom-dev-ca")])
    ca_cert = _ca_certificate(ca_key, ca_name)

    serving_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in APISERVER_DNS_NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in APISERVER_IPS]
    serving_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    serving = (
        _leaf_builder(serving_key, serving_name, ca_cert, ExtendedKeyUsageOID.SERVER_AUTH)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin_name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ADMIN_GROUP),
        x509.NameAttribute(NameOID.COMMON_NAME, ADMIN_USER),
    ])
    admin = _leaf_builder(admin_key, admin_name, ca_cert, ExtendedKeyUsageOID.CLIENT_AUTH).sign(
        ca_key, hashes.SHA256())

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    _write_key(pki.ca_key, ca_key)
    _write_key(pki.apiserver_key, serving_key)
    _write_key(pki.admin_key, admin_key)
    _write_key(pki.sa_key, sa_key)
    _write_public(pki.sa_pub, sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    _write_public(pki.apiserver_cert, serving.public_bytes(serialization.Encoding.PEM))
    _write_public(pki.admin_cert, admin.public_bytes(serialization.Encoding.PEM))
    _write_public(pki.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))


def _now() -> datetime.datetime:
    # Backdated a little so a skewed clock in a sibling process does not reject a fresh cert.
    return datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)


def _ca_certificate(key: ec.EllipticCurvePrivateKey, name: x509.Name) -> x509.Certificate:
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now())
        .not_valid_after(_now() + datetime.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def _leaf_builder(key: ec.EllipticCurvePrivateKey, subject: x509.Name, ca: x509.Certificate,
                  usage: x509.ObjectIdentifier) -> x509.CertificateBuilder:
    public = key.public_key()
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now())
        .not_valid_after(_now() + datetime.timedelta(days=_LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
        encipher_only=False, decipher_only=False,
    )


def _write_key(path: Path, key: SigningKey) -> None:
    """Write a private key readable by the owner only; the mode is set at creation, never widened."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_private(path, pem)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` with mode 0600 from the first byte (also used for tokens and kubeconfigs)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an existing file keeps its old mode through O_CREAT
        handle.write(data)


def _write_public(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o644)
