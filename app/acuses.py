"""Acuses: sealed receipts of acts. The seal is a JWS over the cadena original, signed with the service's
seal key; anyone with the JSON and the published JWKS can check it."""

import datetime as dt
import secrets
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Acuse
from app.security import tokens
from app.security.keys import KeyRing


def new_folio(now: dt.datetime) -> str:
    return f"ACU-{now:%Y%m%d}-{secrets.token_hex(5).upper()}"


def cadena_original(folio: str, tipo: str, emitido_en: dt.datetime, partes: list[str], datos: dict[str, Any]) -> str:
    """Pipe-delimited like SAT's cadenas originales: every fact of the act, in a fixed order."""
    fields = [
        "1.0",
        folio,
        tipo,
        emitido_en.astimezone(dt.UTC).isoformat(timespec="seconds"),
        ",".join(partes),
        *(f"{k}={_text(v)}" for k, v in sorted(datos.items())),
    ]
    return "||" + "|".join(fields) + "||"


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


async def issue_acuse(
    session: AsyncSession,
    ring: KeyRing,
    *,
    tipo: str,
    partes: list[str],
    datos: dict[str, Any],
    now: dt.datetime,
    credencial_id: uuid.UUID | None = None,
) -> Acuse:
    folio = new_folio(now)
    cadena = cadena_original(folio, tipo, now, partes, datos)
    acuse = Acuse(
        folio=folio,
        tipo=tipo,
        emitido_en=now,
        partes=partes,
        datos=datos,
        cadena_original=cadena,
        sello=tokens.seal(ring, cadena.encode()),
        credencial_id=credencial_id,
    )
    session.add(acuse)
    await session.flush()
    return acuse


async def acuse_of_party(session: AsyncSession, folio: str, rfc: str) -> Acuse | None:
    """The acuse if `rfc` is one of its parties; None otherwise, the same as for a folio that does not exist."""
    return await session.scalar(select(Acuse).where(Acuse.folio == folio, Acuse.partes.contains([rfc])))


async def acuse_by_folio(session: AsyncSession, folio: str) -> Acuse | None:
    return await session.get(Acuse, folio)


def verification_url(public_url: str, acuse: Acuse) -> str:
    """What the PDF's QR code carries: the folio and the seal's last characters, nothing personal."""
    return f"{public_url.rstrip('/')}/v1/acuses/{acuse.folio}/verificacion?sello={acuse.sello[-24:]}"


async def acuses_of(session: AsyncSession, rfc: str, *, limite: int) -> list[Acuse]:
    """The acuses `rfc` is a party to, newest first (the portal's list of what a person can download)."""
    query = select(Acuse).where(Acuse.partes.contains([rfc])).order_by(Acuse.emitido_en.desc()).limit(limite)
    return list(await session.scalars(query))
