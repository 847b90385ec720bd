"""The e.firma → password → TOTP → token flow as a client performs it, for tests."""

import base64
import email
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import httpx2

from app.security import efirma, totp
from app.settings import Settings

SAT_KEY_PASSWORD = b"12345678a"


@cache
def _private_key(key: Path, password: bytes) -> object:
    """Decrypting a SAT .key (PKCS#8, PBKDF2) costs a tenth of a second, and a hundred tests load the same two
    files; the key object is immutable, so one per file serves them all."""
    return efirma.load_private_key(key.read_bytes(), password)


@dataclass
class Efirma:
    rfc: str
    cer: bytes
    key: object  # RSAPrivateKey

    @classmethod
    def from_files(cls, rfc: str, cer: Path, key: Path, password: bytes = SAT_KEY_PASSWORD) -> "Efirma":
        return cls(rfc, cer.read_bytes(), _private_key(key, password))

    def sign(self, reto_b64: str) -> str:
        return efirma.sign_reto(self.key, reto_b64)


async def prove(client: httpx2.AsyncClient, who: Efirma, *, rfc: str | None = None, cer: bytes | None = None) -> dict:
    reto = (await client.post("/v1/efirma/retos", json={"rfc": rfc or who.rfc})).json()
    return {
        "reto_id": reto["reto_id"],
        "certificado": base64.b64encode(cer if cer is not None else who.cer).decode(),
        "firma": who.sign(reto["reto"]),
    }


def password_from_outbox(settings: Settings) -> str:
    latest = max(settings.outbox_dir.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    return password_from_message(latest.read_bytes())


def password_from_message(raw: bytes) -> str:
    body = email.message_from_bytes(raw).get_payload(decode=True).decode().replace("\r\n", "\n")
    return re.search(r"^    (\S{40,})$", body, re.M).group(1)


@dataclass
class Credential:
    rfc: str
    password: str
    secret: str
    folio_acuse: str


async def obtain_password(client: httpx2.AsyncClient, settings: Settings, who: Efirma) -> Credential:
    response = await client.post("/v1/contrasenas", json={**await prove(client, who), "correo": "nomina@example.com"})
    assert response.status_code == 201, response.text
    body = response.json()
    return Credential(who.rfc, password_from_outbox(settings), body["otp"]["secreto"], body["folio_acuse"])


async def token_response(client: httpx2.AsyncClient, rfc: str, password: str, code: str) -> httpx2.Response:
    form = {"grant_type": "client_credentials", "client_id": rfc, "client_secret": password, "otp": code}
    return await client.post("/v1/token", data=form)


async def obtain_token(client: httpx2.AsyncClient, credential: Credential) -> str:
    response = await token_response(client, credential.rfc, credential.password, totp.current_code(credential.secret))
    assert response.status_code == 200, response.text
    return response.json()["access_token"]
