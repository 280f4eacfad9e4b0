"""The box's CA and server certificate: X.509 constraints browsers and Python 3.13's strict mode
insist on, names and addresses, lifetimes, renewal, fingerprints, file modes, and a real TLS
handshake verified against the CA."""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import DNSName, IPAddress, PolicyBuilder, Store, VerificationError

from appliance import certificates
from appliance.certificates import BoxIdentity, ensure, fingerprint

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
BOX = BoxIdentity(
    "Cabinet de radiologie Exemple",
    "pacs",
    ("pacs.cabinet.lan",),
    (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("192.168.10.5")),
)


def extension(certificate: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension[x509.ExtensionType]:
    return certificate.extensions.get_extension_for_class(kind)


def verifier_for(
    ca: x509.Certificate, name: x509.verification.Subject, at: datetime
) -> x509.verification.ServerVerifier:
    return PolicyBuilder().store(Store([ca])).time(at).build_server_verifier(name)


def test_the_ca_is_a_constrained_ten_year_authority_named_after_the_practice_and_box(tmp_path: Path) -> None:
    ca = ensure(tmp_path, BOX, NOW).ca
    constraints = extension(ca, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca  # type: ignore[attr-defined]
    usage = extension(ca, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign  # type: ignore[attr-defined]
    assert not usage.value.digital_signature  # type: ignore[attr-defined]
    assert ca.not_valid_after_utc - ca.not_valid_before_utc >= timedelta(days=3650)
    assert ca.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Cabinet de radiologie Exemple"
    assert "pacs" in str(ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    assert ca.subject == ca.issuer


def test_the_server_certificate_names_the_box_for_tls_servers_only(tmp_path: Path) -> None:
    made = ensure(tmp_path, BOX, NOW)
    server = made.server
    names = extension(server, x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["pacs", "pacs.local", "pacs.cabinet.lan"]  # type: ignore[attr-defined]
    assert set(names.get_values_for_type(x509.IPAddress)) == set(BOX.addresses)  # type: ignore[attr-defined]
    assert list(extension(server, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]  # type: ignore[call-overload]
    assert not extension(server, x509.BasicConstraints).value.ca  # type: ignore[attr-defined]
    assert server.not_valid_after_utc - server.not_valid_before_utc <= timedelta(days=397)
    assert server.not_valid_before_utc <= NOW < server.not_valid_after_utc
    assert server.issuer == made.ca.subject


@pytest.mark.parametrize(
    "name", [DNSName("pacs"), DNSName("pacs.local"), DNSName("pacs.cabinet.lan"), IPAddress(BOX.addresses[1])]
)
def test_the_server_certificate_verifies_against_the_ca(tmp_path: Path, name: x509.verification.Subject) -> None:
    made = ensure(tmp_path, BOX, NOW)
    chain = verifier_for(made.ca, name, NOW + timedelta(days=1)).verify(made.server, [])
    assert chain[-1] == made.ca


def test_another_name_is_refused(tmp_path: Path) -> None:
    made = ensure(tmp_path, BOX, NOW)
    with pytest.raises(VerificationError):
        verifier_for(made.ca, DNSName("elsewhere.lan"), NOW).verify(made.server, [])


def test_a_tls_handshake_verifies_with_python_s_strict_checks(tmp_path: Path) -> None:
    ensure(tmp_path, BOX)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    client_context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    client_context.verify_flags |= ssl.VERIFY_X509_STRICT  # the default from Python 3.13 on
    server_end, client_end = socket.socketpair()
    with server_end, client_end:
        server = threading.Thread(target=lambda: accept_one(server_context, server_end))
        server.start()
        with client_context.wrap_socket(client_end, server_hostname="pacs.local") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            assert tls.recv(5) == b"hello"
        server.join(timeout=10)


def accept_one(context: ssl.SSLContext, connection: socket.socket) -> None:
    with context.wrap_socket(connection, server_side=True) as tls:
        tls.sendall(b"hello")


def test_a_second_run_changes_nothing(tmp_path: Path) -> None:
    first = ensure(tmp_path, BOX, NOW)
    assert first.made_ca and first.made_server
    again = ensure(tmp_path, BOX, NOW + timedelta(days=200))
    assert not again.changed
    assert fingerprint(again.ca) == fingerprint(first.ca) and fingerprint(again.server) == fingerprint(first.server)


def test_the_server_certificate_is_renewed_30_days_before_its_end_by_the_same_ca(tmp_path: Path) -> None:
    first = ensure(tmp_path, BOX, NOW)
    later = first.server.not_valid_after_utc - timedelta(days=29)
    renewed = ensure(tmp_path, BOX, later)
    assert renewed.made_server and not renewed.made_ca
    assert fingerprint(renewed.ca) == fingerprint(first.ca)
    assert renewed.server.not_valid_after_utc > first.server.not_valid_after_utc
    verifier_for(renewed.ca, DNSName("pacs"), later).verify(renewed.server, [])


def test_a_new_address_or_name_makes_a_new_server_certificate(tmp_path: Path) -> None:
    ensure(tmp_path, BOX, NOW)
    moved = BoxIdentity(BOX.site_name, BOX.host_name, BOX.other_names, (ipaddress.ip_address("10.1.2.3"),))
    renewed = ensure(tmp_path, moved, NOW)
    assert renewed.made_server and not renewed.made_ca
    verifier_for(renewed.ca, IPAddress(ipaddress.ip_address("10.1.2.3")), NOW).verify(renewed.server, [])


def test_a_lost_ca_is_made_again_and_the_server_certificate_with_it(tmp_path: Path) -> None:
    first = ensure(tmp_path, BOX, NOW)
    (tmp_path / "ca.key").unlink()
    again = ensure(tmp_path, BOX, NOW)
    assert again.made_ca and again.made_server
    assert fingerprint(again.ca) != fingerprint(first.ca)
    verifier_for(again.ca, DNSName("pacs"), NOW).verify(again.server, [])


def test_a_damaged_key_is_replaced(tmp_path: Path) -> None:
    ensure(tmp_path, BOX, NOW)
    (tmp_path / "server.key").write_text("not a key")
    assert ensure(tmp_path, BOX, NOW).made_server
    serialization.load_pem_private_key((tmp_path / "server.key").read_bytes(), password=None)


def test_keys_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    ensure(tmp_path / "tls", BOX, NOW)
    modes = {path.name: path.stat().st_mode & 0o777 for path in (tmp_path / "tls").iterdir()}
    assert modes == {"ca.key": 0o600, "server.key": 0o600, "ca.crt": 0o644, "server.crt": 0o644}


def test_the_fingerprint_is_the_sha256_of_the_der_bytes_as_browsers_show_it(tmp_path: Path) -> None:
    ca = ensure(tmp_path, BOX, NOW).ca
    digest = hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    assert fingerprint(ca) == ":".join(digest[i : i + 2] for i in range(0, 64, 2))


def test_the_login_screen_shows_the_address_and_both_fingerprints_within_80_columns(tmp_path: Path) -> None:
    made = ensure(tmp_path, BOX, NOW)
    screen = certificates.console_screen(BOX, made)
    assert "https://\\4/" in screen and "http://\\4/ca.crt" in screen
    lines = screen.splitlines()
    assert lines[0] == "PACS console of Cabinet de radiologie Exemple"
    assert fingerprint(made.ca) == ":".join(line.strip() for line in lines[4:6]), screen
    assert fingerprint(made.server) == ":".join(line.strip() for line in lines[7:9]), screen
    assert max(len(line.replace("\\4", "255.255.255.255")) for line in lines) <= 80  # agetty shows the address


def test_long_practice_names_still_fit_the_name_limits(tmp_path: Path) -> None:
    long_name = BoxIdentity("Centre d'imagerie médicale " * 5, "pacs")
    ca = ensure(tmp_path, long_name, NOW).ca
    assert all(len(str(attribute.value)) <= 64 for attribute in ca.subject)
