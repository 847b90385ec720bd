"""Portal SIA flows (DESIGN §1, the door for people): browser sessions opened with the same credential check
as POST /v1/token, and the lookups only the portal's pages need. Every act the pages do (relationships, acuses,
certification) calls the same flows as the API."""

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import credenciales
from app.models import Certificacion, Credencial, Patron, SesionPortal
from app.models.confianza import certificacion_vigente
from app.security import sessions, tokens
from app.security.keys import Keys
from app.security.passwords import VerificationGate
from app.security.rate_limit import RateLimiter
from app.security.tokens import Caller
from app.settings import Settings


@dataclass(frozen=True)
class SesionAbierta:
    token: str  # the cookie's value; only its digest is stored
    rfc: str
    credencial_id: uuid.UUID
    vence_en: dt.datetime


async def sign_in(
    session: AsyncSession,
    keys: Keys,
    settings: Settings,
    limiter: RateLimiter,
    gate: VerificationGate,
    *,
    rfc: str,
    password: str,
    otp: str,
    source: str,
    now: dt.datetime,
) -> SesionAbierta:
    """RFC + password + TOTP, checked by credenciales.exchange_token itself (rate limits, the Argon2 cap, lockout,
    replay, equal-time answers: whatever /v1/token enforces, the portal inherits). Raises credenciales.TokenError."""
    token, _ = await credenciales.exchange_token(
        session, keys, settings, limiter, gate, rfc=rfc, password=password, otp=otp, source=source, now=now
    )
    # The token names the exact credential that was checked; the session binds to it and dies with it.
    claims = tokens.verify_access_token(
        keys.tokens, token, issuer=settings.token_issuer, audience=settings.token_audience, now=now
    )
    # Sessions of this credential that timed out are of no use to anyone: tidy them on the way in.
    idle = dt.timedelta(minutes=settings.portal_idle_minutes)
    s = SesionPortal
    await session.execute(
        delete(s).where(s.credencial_id == claims.credencial_id, (s.vence_en <= now) | (s.ultimo_uso <= now - idle))
    )
    raw = sessions.new_session_token()
    vence = now + dt.timedelta(hours=settings.portal_absolute_hours)
    session.add(
        SesionPortal(
            id=sessions.session_digest(raw),
            rfc=claims.sub,
            credencial_id=claims.credencial_id,
            creada_en=now,
            ultimo_uso=now,
            vence_en=vence,
        )
    )
    await session.flush()
    return SesionAbierta(raw, claims.sub, claims.credencial_id, vence)


async def session_caller(session: AsyncSession, raw: str, settings: Settings, now: dt.datetime) -> Caller | None:
    """The caller behind a cookie, touching the session; None when it does not exist, sat unused past the idle
    timeout, passed its absolute end, or its credential was renewed or cancelled. One statement, so two tabs
    racing cannot revive a session the clock has ended."""
    s = SesionPortal
    idle = dt.timedelta(minutes=settings.portal_idle_minutes)
    digest = sessions.session_digest(raw)
    credential_active = exists().where(Credencial.id == s.credencial_id, Credencial.estado == "activa")
    row = (
        await session.execute(
            update(s)
            .where(s.id == digest, s.ultimo_uso > now - idle, s.vence_en > now, credential_active)
            .values(ultimo_uso=now)
            .returning(s.rfc, s.credencial_id)
        )
    ).first()
    if row is None:
        return None
    return Caller(rfc=row.rfc, credencial_id=row.credencial_id, jti=f"portal:{digest.hex()[:16]}")


async def sign_out(session: AsyncSession, raw: str) -> None:
    await session.execute(delete(SesionPortal).where(SesionPortal.id == sessions.session_digest(raw)))


@dataclass(frozen=True)
class Persona:
    rfc: str
    nombre: str | None
    razon_social: str | None  # set when the RFC is in the employer registry
    certificado_hasta: dt.datetime | None


async def _certified_until(session: AsyncSession, rfc: str, now: dt.datetime) -> dt.datetime | None:
    c = Certificacion
    return await session.scalar(
        select(c.vigente_hasta)
        .where(c.rfc == rfc, certificacion_vigente(now))
        .order_by(c.vigente_hasta.desc())
        .limit(1)
    )


async def who(session: AsyncSession, credencial_id: uuid.UUID, rfc: str, now: dt.datetime) -> Persona:
    """The signed-in person, for the page's header and to choose its menus (employer, developer, or both)."""
    nombre = await session.scalar(select(Credencial.nombre).where(Credencial.id == credencial_id))
    patron = await session.get(Patron, rfc)
    return Persona(rfc, nombre, patron.razon_social if patron else None, await _certified_until(session, rfc, now))


async def developer_card(session: AsyncSession, rfc: str, now: dt.datetime) -> Persona | None:
    """What an employer sees before confirming a relationship: the developer's name (from its e.firma) and
    whether it is certified. None when the RFC has no active credential: it could not be named anyway."""
    credential = await session.scalar(select(Credencial).where(Credencial.rfc == rfc, Credencial.estado == "activa"))
    if credential is None:
        return None
    return Persona(rfc, credential.nombre, None, await _certified_until(session, rfc, now))
