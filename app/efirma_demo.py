"""A demo certification authority and demo e.firma files shaped like SAT's (RFC in x500UniqueIdentifier,
CURP in serialNumber, clientAuth + emailProtection, no OU), for `make run` and the tests."""

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

X500_UNIQUE_IDENTIFIER = ObjectIdentifier("2.5.4.45")
DEMO_KEY_PASSWORD = b"12345678a"  # the same as SAT's public test files


@dataclass(frozen=True)
class DemoCa:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey


def make_ca(name: str = "AC DEMO SIA (no es del SAT)", *, now: dt.datetime | None = None) -> DemoCa:
    now = now or dt.datetime.now(dt.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name), x509.NameAttribute(NameOID.COUNTRY_NAME, "MX")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return DemoCa(cert, key)


def make_efirma(
    ca: DemoCa,
    *,
    rfc: str,
    nombre: str,
    curp: str | None = None,
    rfc_representante: str | None = None,
    not_before: dt.datetime | None = None,
    days: int = 4 * 365,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    not_before = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    unique = f"{rfc} / {rfc_representante}" if rfc_representante else rfc
    attributes = [
        x509.NameAttribute(NameOID.COMMON_NAME, nombre),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, nombre),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "MX"),
        x509.NameAttribute(X500_UNIQUE_IDENTIFIER, unique),
    ]
    if curp:
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, curp if not rfc_representante else f" / {curp}"))
    # SAT's certificate number: 20 digits, stored as ASCII in the serial.
    serial = int.from_bytes(f"9{secrets.randbelow(10**19):019d}".encode(), "big")
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
        .add_extension(x509.KeyUsage(True, True, True, True, False, False, False, False, False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return cert, key


def write_ca(folder: Path, ca: DemoCa) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ac-demo.cer"
    path.write_bytes(ca.cert.public_bytes(serialization.Encoding.DER))
    return path


def write_efirma(folder: Path, name: str, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> tuple[Path, Path]:
    """SAT's formats: .cer DER, .key DER PKCS#8 encrypted with DEMO_KEY_PASSWORD."""
    folder.mkdir(parents=True, exist_ok=True)
    cer, key_path = folder / f"{name}.cer", folder / f"{name}.key"
    cer.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(DEMO_KEY_PASSWORD),
        )
    )
    key_path.chmod(0o600)
    return cer, key_path
