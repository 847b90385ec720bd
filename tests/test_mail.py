"""The mail that carries a password (DESIGN §2 flow 1): STARTTLS with the server's certificate verified, and no
silent plaintext in production."""

import pytest
from pydantic import ValidationError

from app.mail import MailError, send_mail
from app.settings import Settings
from tests.smtp_helpers import self_signed_certificate, smtp_server

PASSWORD_TEXT = "Su contraseña: s3cr3t0-que-nadie-mas-debe-leer"


def _settings(tmp_path, port: int, **update) -> Settings:
    return Settings(env="test", data_dir=tmp_path, smtp_host="127.0.0.1", smtp_port=port, **update)


async def test_an_smtp_server_with_an_unverified_certificate_never_gets_the_password(tmp_path):
    # The attack: a man in the middle answers STARTTLS with a certificate of its own. Before, smtplib's
    # starttls() without a context accepted any certificate and the password went to the impostor.
    with smtp_server(tmp_path) as (controller, inbox, _certificate):
        with pytest.raises(MailError, match="CERTIFICATE_VERIFY_FAILED"):
            # STARTTLS asked for explicitly: the old default (off) would not even have tried.
            await send_mail(_settings(tmp_path, controller.port, smtp_starttls=True), "a@b.mx", "SIA", PASSWORD_TEXT)
    assert inbox.messages == []


async def test_a_certificate_for_another_host_is_refused_too(tmp_path):
    # Trusted CA, wrong name: the certificate is for 127.0.0.2, the connection to 127.0.0.1.
    other = tmp_path / "other"
    other.mkdir()
    other_cert, _ = self_signed_certificate(other, host="127.0.0.2")
    with smtp_server(tmp_path) as (controller, inbox, _certificate):
        settings = _settings(tmp_path, controller.port, smtp_ca_file=other_cert)
        with pytest.raises(MailError):
            await send_mail(settings, "a@b.mx", "SIA", PASSWORD_TEXT)
    assert inbox.messages == []


async def test_a_verified_server_gets_the_message(tmp_path):
    with smtp_server(tmp_path) as (controller, inbox, certificate):
        settings = _settings(tmp_path, controller.port, smtp_ca_file=certificate)
        assert await send_mail(settings, "a@b.mx", "SIA", PASSWORD_TEXT) == "smtp"
    [message] = inbox.messages
    assert PASSWORD_TEXT.encode() in message


async def test_a_server_without_starttls_gets_nothing(tmp_path):
    # A downgrade: the server (or whoever sits in between) does not offer STARTTLS. No fallback to plaintext.
    with smtp_server() as (controller, inbox, _):
        with pytest.raises(MailError):
            await send_mail(_settings(tmp_path, controller.port), "a@b.mx", "SIA", PASSWORD_TEXT)
    assert inbox.messages == []


async def test_plaintext_only_when_asked_for_twice(tmp_path):
    with smtp_server() as (controller, inbox, _):
        with pytest.raises(MailError):
            await send_mail(_settings(tmp_path, controller.port, smtp_starttls=False), "a@b.mx", "SIA", "x")
        settings = _settings(tmp_path, controller.port, smtp_starttls=False, smtp_allow_plaintext=True)
        assert await send_mail(settings, "a@b.mx", "SIA", PASSWORD_TEXT) == "smtp"
    assert len(inbox.messages) == 1


PRODUCTION = {
    "env": "production",
    "database_url": "postgresql://x@127.0.0.1:1/x",
    "efirma_trust_dir": "/nonexistent",
    "public_url": "https://sia.example.mx",
    "totp_encryption_key": "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=",
}


def test_production_requires_an_smtp_host():
    with pytest.raises(ValidationError, match="SIA_SMTP_HOST"):
        Settings(**PRODUCTION)


def test_production_refuses_tls_turned_off_silently():
    with pytest.raises(ValidationError, match="SIA_SMTP_ALLOW_PLAINTEXT"):
        Settings(**PRODUCTION, smtp_host="mail.example.mx", smtp_starttls=False)
    Settings(**PRODUCTION, smtp_host="127.0.0.1", smtp_starttls=False, smtp_allow_plaintext=True)
    assert Settings(**PRODUCTION, smtp_host="mail.example.mx").smtp_starttls
