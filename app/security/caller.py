"""The one dependency every protected route uses: a valid access token whose credential is still active."""

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Session
from app.deps import KeysDep, SettingsDep
from app.models import Credencial
from app.problems import Problem, ProblemCode
from app.security.tokens import InvalidToken

log = logging.getLogger(__name__)

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="Token de POST /v1/token: `Authorization: Bearer <access_token>`.",
)


# The codes every protected route can answer with before it does anything else.
CALLER_PROBLEMS: tuple[ProblemCode, ...] = ("no_autenticado", "token_invalido", "credencial_no_vigente")


@dataclass(frozen=True)
class Caller:
    rfc: str
    credencial_id: uuid.UUID
    jti: str


def _unauthorized(code: ProblemCode, detail: str, error: str | None) -> Problem:
    challenge = 'Bearer realm="sia"' + (f', error="{error}"' if error else "")
    return Problem(code, detail, headers={"WWW-Authenticate": challenge})


async def current_caller(
    session: Session,
    settings: SettingsDep,
    keys: KeysDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    if credentials is None:
        # RFC 6750 §3.1: no error code when the request simply carried no credentials.
        raise _unauthorized("no_autenticado", "Falta el encabezado Authorization: Bearer <token>.", None)
    try:
        claims = keys.verified_tokens.verify(
            keys.tokens,
            credentials.credentials,
            issuer=settings.token_issuer,
            audience=settings.token_audience,
            now=dt.datetime.now(dt.UTC),
        )
    except InvalidToken as e:
        log.info("token rejected: %s", e)
        raise _unauthorized(
            "token_invalido", "El token no es válido o venció; pida otro en POST /v1/token.", "invalid_token"
        ) from None
    active = await session.scalar(
        select(
            exists().where(
                Credencial.id == claims.credencial_id, Credencial.rfc == claims.sub, Credencial.estado == "activa"
            )
        )
    )
    if not active:
        raise _unauthorized(
            "credencial_no_vigente",
            "La contraseña con la que se emitió este token fue renovada o cancelada.",
            "invalid_token",
        )
    return Caller(claims.sub, claims.credencial_id, claims.jti)


CurrentCaller = Annotated[Caller, Depends(current_caller)]


async def require_still_active(session: AsyncSession, caller: Caller) -> None:
    """For a request that waited (a long poll) after current_caller let it in: its credential may have been
    renewed or cancelled meanwhile."""
    active = await session.scalar(
        select(exists().where(Credencial.id == caller.credencial_id, Credencial.estado == "activa"))
    )
    if not active:
        raise _unauthorized(
            "credencial_no_vigente",
            "La contraseña con la que se emitió este token fue renovada o cancelada.",
            "invalid_token",
        )
