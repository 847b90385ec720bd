"""TOTP (RFC 6238): 30-second steps, one step of drift, secrets encrypted at rest.

Replay is refused by the caller storing the matched step and accepting only later ones
(credential.totp_ultimo_paso), which works across replicas because it lives in PostgreSQL."""

import datetime as dt

import pyotp
from cryptography.fernet import Fernet, InvalidToken
from pyotp.exceptions import OTPVerificationError

ISSUER = "SIA Infonavit"


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, rfc: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=rfc, issuer_name=ISSUER)


def encrypt(secret: str, key: str) -> bytes:
    return Fernet(key.encode()).encrypt(secret.encode())


def decrypt(token: bytes, key: str) -> str:
    try:
        return Fernet(key.encode()).decrypt(token).decode()
    except InvalidToken as e:
        raise RuntimeError("TOTP secret cannot be decrypted: SIA_TOTP_ENCRYPTION_KEY changed?") from e


def matched_step(secret: str, code: str, now: dt.datetime) -> int | None:
    """The time step the code belongs to (now ± one step), or None."""
    if not (len(code) == 6 and code.isdigit()):
        return None
    try:
        return pyotp.TOTP(secret).verify_and_get_timecode(code, for_time=now, valid_window=1)
    except OTPVerificationError:
        return None


def current_code(secret: str, now: dt.datetime | None = None) -> str:
    return pyotp.TOTP(secret).at(now or dt.datetime.now(dt.UTC))
