"""The dev cluster's PKI: what kube-apiserver and kubectl will verify, checked without starting them."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from loom.devcluster.pki import Pki, ensure_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return ensure_pki(tmp_path_factory.mktemp("pki"))


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.mark.parametrize("leaf", ["apiserver_cert", "admin_cert"])
def test_leaf_certificates_chain_to_the_ca(pki: Pki, leaf: str) -> None:
    ca = _cert(pki.ca_cert)
    cert = _cert(getattr(pki, leaf))
    cert.verify_directly_issued_by(ca)  # raises on a wrong issuer name or signature
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_ca_is_a_self_signed_ca(pki: Pki) -> None:
    ca = _cert(pki.ca_cert)
    ca.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True


def test_apiserver_cert_covers_every_name_clients_use(pki: Pki) -> None:
    cert = _cert(pki.apiserver_cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "kubernetes.default.svc"} <= set(sans.get_values_for_type(x509.DNSName))
    ips = set(sans.get_values_for_type(x509.IPAddress))
    assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.0.0.1")} <= ips
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages


def test_admin_cert_is_in_system_masters(pki: Pki) -> None:
    cert = _cert(pki.admin_cert)
    orgs = [attr.value for attr in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert orgs == ["system:masters"]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usages


def test_service_account_keys_are_a_matching_rsa_pair(pki: Pki) -> None:
    private = serialization.load_pem_private_key(pki.sa_key.read_bytes(), password=None)
    public = serialization.load_pem_public_key(pki.sa_pub.read_bytes())
    assert isinstance(private, rsa.RSAPrivateKey)
    assert isinstance(public, rsa.RSAPublicKey)
    assert private.public_key().public_numbers() == public.public_numbers()


def test_private_keys_are_owner_only(pki: Pki) -> None:
    for key in (pki.ca_key, pki.apiserver_key, pki.admin_key, pki.sa_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_existing_pki_is_reused(pki: Pki) -> None:
    before = {path: path.read_bytes() for path in pki.files()}
    ensure_pki(pki.directory)
    assert {path: path.read_bytes() for path in pki.files()} == before


def test_interrupted_generation_is_redone(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path)
    old_ca = first.ca_cert.read_bytes()
    first.ca_cert.unlink()  # what an interrupted run leaves: ca.crt is written last
    second = ensure_pki(tmp_path)
    _cert(second.apiserver_cert).verify_directly_issued_by(_cert(second.ca_cert))
    assert second.ca_cert.read_bytes() != old_ca
