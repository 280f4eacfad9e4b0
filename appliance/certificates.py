"""The box's own TLS: a certificate authority made for this box at first boot and a server
certificate it signs for nginx, so that a workstation trusts the console once the CA is installed
(downloaded from `/ca.crt`, its fingerprint compared with the one on the box's screen).

- CA: basicConstraints CA (critical), keyUsage keyCertSign + cRLSign (critical), 10 years, named
  after the practice and the box; made when missing, remade only when it is about to expire.
- Server: at most 397 days (what browsers accept), extendedKeyUsage serverAuth, subjectAltName the
  box's host name, `<host>.local`, the configured `web.host_name` and the box's IP addresses;
  renewed within 30 days of its end, when the CA changed, or when the names or addresses changed.

Keys are ECDSA P-256, written 0600; certificates 0644. Every file is written to a temporary file,
synced, then renamed into place, so a power cut leaves the old pair or the new one.
The files live in `tls/` next to the configuration file (`/etc/appliance/tls/` on the box, where
only root writes), or `<data>/tls/` with the development defaults of `make run`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.config import Config

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CA_CERTIFICATE = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERTIFICATE = "server.crt"
SERVER_KEY = "server.key"

CA_LIFETIME = timedelta(days=3652)  # 10 years
SERVER_LIFETIME = timedelta(days=397)  # the longest browsers accept (CA/Browser Forum, Apple, Chrome)
RENEW_BEFORE = timedelta(days=30)
BACKDATE = timedelta(hours=1)  # a workstation whose clock is a little behind still accepts it
NAME_LIMIT_BYTES = 64  # RFC 5280 ub-common-name, ub-organization-name


class CertificateError(Exception):
    """The TLS files cannot be read or written; the message names the file."""


@dataclass(frozen=True)
class BoxIdentity:
    """What the certificates name: the practice, the box's host name, other DNS names it is reached
    by, and its IP addresses."""

    site_name: str
    host_name: str
    other_names: tuple[str, ...] = ()
    addresses: tuple[IPAddress, ...] = ()

    @property
    def dns_names(self) -> tuple[str, ...]:
        names = [self.host_name, f"{self.host_name}.local", *self.other_names]
        return tuple(dict.fromkeys(name.lower() for name in names if name))


@dataclass(frozen=True)
class BoxCertificates:
    """The CA and server certificate in force, and what `ensure` had to make."""

    ca: x509.Certificate
    server: x509.Certificate
    made_ca: bool = False
    made_server: bool = False

    @property
    def changed(self) -> bool:
        return self.made_ca or self.made_server


def tls_directory(config: Config) -> Path:
    """Where the box's TLS files are: `tls/` beside the configuration file, else `<data>/tls`."""
    source = Path(config.source)
    if source.is_file():
        return source.parent / "tls"
    return config.storage.data_directory / "tls"


def ca_certificate_path(config: Config) -> Path:
    """The CA certificate workstations download (`/ca.crt`); it may not exist yet."""
    return tls_directory(config) / CA_CERTIFICATE


def box_identity(config: Config) -> BoxIdentity:
    """This box as the certificates name it: the configured names and the addresses it has now."""
    host_name = socket.gethostname().split(".")[0]
    other_names = (config.web.host_name,) if config.web.host_name else ()
    return BoxIdentity(config.site_name, host_name, other_names, (ipaddress.ip_address("127.0.0.1"), *box_addresses()))


def box_addresses() -> tuple[IPAddress, ...]:
    """The global IP addresses of the box's interfaces (`ip -json address`); none when unknown."""
    try:
        listing = subprocess.run(
            ["ip", "-json", "address", "show", "scope", "global"], capture_output=True, text=True, timeout=10
        )
        interfaces = json.loads(listing.stdout or "[]")
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return ()
    found = [info.get("local", "") for interface in interfaces for info in interface.get("addr_info", [])]
    return tuple(ipaddress.ip_address(address) for address in found if address)


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER bytes, as browsers and `openssl x509 -fingerprint` show it."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def ensure(directory: Path, identity: BoxIdentity, now: datetime | None = None) -> BoxCertificates:
    """Make whatever is missing, ending or out of date in `directory`; return the pair in force.

    Raises CertificateError when a file cannot be read or written."""
    moment = now or datetime.now(UTC)
    directory.mkdir(parents=True, exist_ok=True)
    made_ca = False
    ca, ca_key = load_pair(directory, CA_CERTIFICATE, CA_KEY)
    if ca is None or ca_key is None or ending(ca, moment):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = make_ca(identity, ca_key, moment)
        write_pair(directory, CA_CERTIFICATE, ca, CA_KEY, ca_key)
        made_ca = True
    server, server_key = load_pair(directory, SERVER_CERTIFICATE, SERVER_KEY)
    if server is None or server_key is None or server_outdated(server, ca, identity, moment):
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = make_server(identity, server_key, ca, ca_key, moment)
        write_pair(directory, SERVER_CERTIFICATE, server, SERVER_KEY, server_key)
        return BoxCertificates(ca, server, made_ca, made_server=True)
    return BoxCertificates(ca, server, made_ca)


def ending(certificate: x509.Certificate, now: datetime) -> bool:
    return certificate.not_valid_after_utc - RENEW_BEFORE <= now


def server_outdated(server: x509.Certificate, ca: x509.Certificate, identity: BoxIdentity, now: datetime) -> bool:
    """Whether the server certificate must be made again: ending, from another CA, or naming other
    names or addresses than the box has now."""
    if ending(server, now) or not issued_by(server, ca):
        return True
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(names.get_values_for_type(x509.DNSName)) != set(identity.dns_names) or set(
        names.get_values_for_type(x509.IPAddress)
    ) != set(identity.addresses)


def alternative_names(certificate: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses a certificate is valid for (none for the CA)."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*names.get_values_for_type(x509.DNSName), *map(str, names.get_values_for_type(x509.IPAddress))]


def issued_by(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def ca_name(identity: BoxIdentity) -> x509.Name:
    site = identity.site_name.strip() or "PACS appliance"
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, within_limit(site)),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "PACS appliance"),
            x509.NameAttribute(NameOID.COMMON_NAME, within_limit(f"PACS {identity.host_name} CA - {site}")),
        ]
    )


def within_limit(text: str) -> str:
    """`text` cut to the 64 UTF-8 bytes X.509 allows in a name attribute (never mid-character)."""
    return text.encode("utf-8")[:NAME_LIMIT_BYTES].decode("utf-8", errors="ignore").strip()


def make_ca(identity: BoxIdentity, key: ec.EllipticCurvePrivateKey, now: datetime) -> x509.Certificate:
    name = ca_name(identity)
    public_key = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now - BACKDATE + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(certificate_signing=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def make_server(
    identity: BoxIdentity,
    key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: datetime,
) -> x509.Certificate:
    alternative_names: list[x509.GeneralName] = [x509.DNSName(name) for name in identity.dns_names]
    alternative_names += [x509.IPAddress(address) for address in identity.addresses]
    ca_key_identifier = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.dns_names[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now - BACKDATE + SERVER_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(certificate_signing=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_identifier), critical=False
        )
    )
    return builder.sign(ca_key, hashes.SHA256())


def key_usage(certificate_signing: bool) -> x509.KeyUsage:
    """keyCertSign + cRLSign for the CA; digitalSignature for the server (ECDHE key exchange)."""
    return x509.KeyUsage(
        digital_signature=not certificate_signing,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=certificate_signing,
        crl_sign=certificate_signing,
        encipher_only=False,
        decipher_only=False,
    )


def load_pair(
    directory: Path, certificate_name: str, key_name: str
) -> tuple[x509.Certificate | None, ec.EllipticCurvePrivateKey | None]:
    """The certificate and key in `directory`, None for each one missing or unreadable as such."""
    certificate_path, key_path = directory / certificate_name, directory / key_name
    if not certificate_path.exists() or not key_path.exists():
        return None, None
    try:
        certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except OSError as error:
        raise CertificateError(f"cannot read {error.filename}: {error.strerror}") from error
    except ValueError:
        return None, None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != certificate.public_key():
        return None, None
    return certificate, key


def write_pair(
    directory: Path,
    certificate_name: str,
    certificate: x509.Certificate,
    key_name: str,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    """The key first (0600), then its certificate (0644), each replaced atomically."""
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_atomically(directory / key_name, key_bytes, 0o600)
    write_atomically(directory / certificate_name, certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def write_atomically(path: Path, content: bytes, mode: int) -> None:
    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            os.fchmod(descriptor, mode)
            with os.fdopen(descriptor, "wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise CertificateError(f"cannot write {path}: {error.strerror}") from error


def load_certificate(path: Path) -> x509.Certificate:
    """The PEM certificate at `path`; CertificateError when missing or not a certificate."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as error:
        raise CertificateError(f"cannot read {path}: {error.strerror}") from error
    except ValueError as error:
        raise CertificateError(f"{path} is not a PEM certificate") from error


def console_screen(identity: BoxIdentity, certificates: BoxCertificates) -> str:
    """What the box's login screen shows (an agetty issue file, where `\\4` is the box's current
    IPv4 address): the console's address, where to get the CA, and both fingerprints, split so that
    they fit an 80-column screen and can be read out over the phone."""
    site = identity.site_name.replace("\\", "\\\\")  # agetty reads a backslash as an escape
    lines = [
        f"PACS console of {site}",
        f"  https://\\4/   (host name {identity.host_name})",
        "  CA to install on each workstation: http://\\4/ca.crt",
        "  CA certificate, SHA-256:",
        *(f"    {half}" for half in halves(fingerprint(certificates.ca))),
        "  console certificate, SHA-256:",
        *(f"    {half}" for half in halves(fingerprint(certificates.server))),
    ]
    return "\n".join(lines) + "\n\n"


def halves(fingerprint_text: str) -> tuple[str, str]:
    octets = fingerprint_text.split(":")
    middle = len(octets) // 2
    return ":".join(octets[:middle]), ":".join(octets[middle:])
