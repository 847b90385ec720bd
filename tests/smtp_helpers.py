"""An SMTP server on loopback (aiosmtpd) that offers STARTTLS with a certificate made here, for mail tests."""

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, _server, _session, envelope):
        self.messages.append(envelope.original_content)
        return "250 OK"


def self_signed_certificate(folder: Path, *, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """(certificate, key) PEM files of a self-signed server certificate for host (an IP address)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Wide validity: tests that travel in time must not see it expire.
        .not_valid_before(now - dt.timedelta(days=3650))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp.crt", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def smtp_server(tls_folder: Path | None = None) -> Iterator[tuple[Controller, Inbox, Path | None]]:
    """Yields (controller, inbox, certificate): with tls_folder, STARTTLS offered with a fresh self-signed
    certificate and required before mail is accepted; without, plain SMTP."""
    inbox = Inbox()
    kwargs: dict = {}
    cert_path = None
    if tls_folder is not None:
        cert_path, key_path = self_signed_certificate(tls_folder)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
        kwargs = {"tls_context": context, "require_starttls": True}
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port(), **kwargs)
    controller.start()
    try:
        yield controller, inbox, cert_path
    finally:
        controller.stop()
