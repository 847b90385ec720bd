"""E-mail: over SMTP when SIA_SMTP_HOST is set, otherwise as .eml files in the data folder's outbox/."""

import asyncio
import datetime as dt
import logging
import os
import smtplib
import ssl
import uuid
from email.message import EmailMessage

from app.settings import Settings

log = logging.getLogger(__name__)


class MailError(Exception):
    pass


def _message(settings: Settings, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = dt.datetime.now(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    message["Message-ID"] = f"<{uuid.uuid4().hex}@sia>"
    # 8bit, not quoted-printable: an operator reading the outbox sees the text as sent.
    message.set_content(body, cte="8bit")
    return message


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Certificate and host name verified: smtplib's own default for starttls() verifies neither, so a
    man in the middle could read the password in the message."""
    cafile = str(settings.smtp_ca_file) if settings.smtp_ca_file else None
    return ssl.create_default_context(cafile=cafile)


def _send_smtp(settings: Settings, message: EmailMessage) -> None:
    assert settings.smtp_host is not None
    if not settings.smtp_starttls and not settings.smtp_allow_plaintext:
        raise MailError("SMTP sin TLS no está permitido: active SIA_SMTP_STARTTLS o SIA_SMTP_ALLOW_PLAINTEXT")
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=15) as smtp:
        if settings.smtp_starttls:
            # Raises SMTPNotSupportedError when the server offers no STARTTLS: never a silent fallback to plaintext.
            smtp.starttls(context=tls_context(settings))
        if settings.smtp_user and settings.smtp_password:
            smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
        smtp.send_message(message)


def _write_outbox(settings: Settings, message: EmailMessage) -> str:
    settings.outbox_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = settings.outbox_dir / f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}.eml"
    # The message holds a password: readable by the service's user only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(bytes(message))
    return str(path)


async def send_mail(settings: Settings, to: str, subject: str, body: str) -> str:
    """Returns where the message went ("smtp" or the outbox file). Never logs the body."""
    message = _message(settings, to, subject, body)
    if settings.smtp_host:
        try:
            await asyncio.to_thread(_send_smtp, settings, message)
        except (OSError, smtplib.SMTPException) as e:  # ssl.SSLError (an unverified certificate) is an OSError
            raise MailError(str(e)) from e
        log.info("correo enviado por SMTP a %s", settings.smtp_host)
        return "smtp"
    path = await asyncio.to_thread(_write_outbox, settings, message)
    log.info("correo guardado en el outbox: %s", path)
    return path
