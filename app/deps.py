"""The one home of the routes' dependencies (docs/arquitectura.md): what they take from the lifespan's typed State
(no globals), the database session and its commit contract, the authenticated caller, the clock and the client's
address; and how a route that uses the database answers when the database is unavailable."""

import datetime as dt
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypedDict, cast

import asyncpg
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import credenciales
from app.db import Database, is_unavailable, unavailable_problem
from app.models.identidad import token_credential_in_force
from app.notify import Notifier
from app.ocsp import OcspChecker
from app.problems import PROBLEM_MEDIA_TYPE, Problem, ProblemCode, problem_response, problem_responses
from app.security.keys import Keys
from app.security.passwords import VerificationGate
from app.security.rate_limit import RateLimiter
from app.security.tokens import AccessClaims, Caller, InvalidToken, verify_access_token
from app.settings import Settings

log = logging.getLogger(__name__)


class State(TypedDict):
    """What app.main's lifespan yields; Starlette hands a copy to every request (polar's server does the same)."""

    settings: Settings
    database: Database
    keys: Keys
    notifier: Notifier
    rate_limiter: RateLimiter
    password_gate: VerificationGate
    ocsp: OcspChecker | None


def state(request: Request) -> State:
    # Starlette keeps the lifespan's state as a plain dict in the scope; typed here, so a misspelled key is a
    # mypy error instead of an AttributeError (a 500).
    return cast(State, request.scope["state"])


async def get_settings(request: Request) -> Settings:
    return state(request)["settings"]


async def get_keys(request: Request) -> Keys:
    return state(request)["keys"]


async def get_database(request: Request) -> Database:
    return state(request)["database"]


async def get_notifier(request: Request) -> Notifier:
    return state(request)["notifier"]


async def get_rate_limiter(request: Request) -> RateLimiter:
    return state(request)["rate_limiter"]


async def get_password_gate(request: Request) -> VerificationGate:
    return state(request)["password_gate"]


async def get_ocsp(request: Request) -> OcspChecker | None:
    return state(request)["ocsp"]


SettingsDep = Annotated[Settings, Depends(get_settings)]
KeysDep = Annotated[Keys, Depends(get_keys)]
DatabaseDep = Annotated[Database, Depends(get_database)]
NotifierDep = Annotated[Notifier, Depends(get_notifier)]
RateLimiterDep = Annotated[RateLimiter, Depends(get_rate_limiter)]
PasswordGateDep = Annotated[VerificationGate, Depends(get_password_gate)]
OcspDep = Annotated[OcspChecker | None, Depends(get_ocsp)]


def utc_now() -> dt.datetime:
    """The routes' clock, read in one place (tests fix it with time_machine, which this reads through)."""
    return dt.datetime.now(dt.UTC)


def client_address(request: Request) -> str:
    # Behind a trusted proxy (SIA_TRUSTED_PROXIES), ProxyHeadersMiddleware has already put the client here.
    return request.client.host if request.client else "desconocido"


# ------------------------------------------------------------------ the session and its commit contract


@asynccontextmanager
async def committed(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """The commit contract of a request's session. A route that returns commits what it wrote; a route that
    raises rolls it back, except a Problem raised with keep_writes=True (a failure counter, the audit row of a
    refusal), whose writes commit before the problem is answered."""
    try:
        yield session
    except Problem as problem:
        if problem.keep_writes:
            await session.commit()
        raise
    await session.commit()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The single place that commits (by `committed`): after the route, before the response is sent."""
    async with state(request)["database"].sessionmaker() as session, committed(session):
        yield session


# scope="function": commit before the response goes out, so a 201 is never sent for a write that then fails.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


# ------------------------------------------------------------------ the caller of a protected route

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="Token de POST /v1/token: `Authorization: Bearer <access_token>`.",
)

# The codes every protected route can answer with before it does anything else.
CALLER_PROBLEMS: tuple[ProblemCode, ...] = ("no_autenticado", "token_invalido", "credencial_no_vigente")


def _unauthorized(code: ProblemCode, detail: str, error: str | None) -> Problem:
    challenge = 'Bearer realm="sia"' + (f', error="{error}"' if error else "")
    return Problem(code, detail, headers={"WWW-Authenticate": challenge})


def verified_claims(keys: Keys, settings: Settings, token: str) -> AccessClaims:
    """The access token's claims, or InvalidToken; from the process's cache when this token was verified before
    (app/security/token_cache.py). Whether its credential still holds is the database's to say."""
    return keys.verified_tokens.verify(
        keys.tokens,
        token,
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        now=utc_now(),
        verifier=verify_access_token,
    )


async def current_caller(
    session: SessionDep,
    settings: SettingsDep,
    keys: KeysDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The one dependency every protected route uses: a valid access token whose credential is still active."""
    if credentials is None:
        # RFC 6750 §3.1: no error code when the request simply carried no credentials.
        raise _unauthorized("no_autenticado", "Falta el encabezado Authorization: Bearer <token>.", None)
    try:
        claims = verified_claims(keys, settings, credentials.credentials)
    except InvalidToken as e:
        log.info("token rejected: %s", e)
        raise _unauthorized(
            "token_invalido", "El token no es válido o venció; pida otro en POST /v1/token.", "invalid_token"
        ) from None
    active = await session.scalar(select(token_credential_in_force(claims.credencial_id, claims.sub)))
    if not active:
        raise credenciales.credential_gone()
    return Caller(claims.sub, claims.credencial_id, claims.jti)


CallerDep = Annotated[Caller, Depends(current_caller)]


# ------------------------------------------------------------------ the database unavailable


def install_database_errors(app: FastAPI) -> None:
    """Database outages as 503 with Retry-After wherever they surface in a route (its session, its commit)."""

    async def _answer(request: Request, error: Exception) -> JSONResponse:
        if not is_unavailable(error):
            raise error  # the generic handler answers it as the 500 it is
        database = request.scope.get("state", {}).get("database")
        return problem_response(request, unavailable_problem(database.retry_after if database else 2))

    for kind in (sa_exc.DBAPIError, sa_exc.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        app.add_exception_handler(kind, _answer)


def document_database_errors(app: FastAPI) -> None:
    """Every route that opens a session or uses the database documents the 503 it answers when the database is
    unavailable (routes list their own codes; this one is the same for all of them, so it is added here)."""
    database_dependencies = {get_session, get_database}
    code: ProblemCode = "base_de_datos_no_disponible"

    def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
        for route in routes:
            if isinstance(route, APIRoute):
                yield route
            elif hasattr(route, "original_router"):  # FastAPI nests included routers instead of copying them
                yield from api_routes(route.original_router.routes)

    for route in api_routes(app.routes):
        calls, pending = set(), list(route.dependant.dependencies)
        while pending:
            dependency = pending.pop()
            calls.add(dependency.call)
            pending.extend(dependency.dependencies)
        if not calls & database_dependencies:
            continue
        existing = route.responses.get(503)
        if existing is not None and PROBLEM_MEDIA_TYPE not in existing.get("content", {}):
            # An RFC 6749 503 (the token endpoint): the database's problem is another media type beside it.
            problem = problem_responses(code)[503]
            existing["content"][PROBLEM_MEDIA_TYPE] = problem["content"][PROBLEM_MEDIA_TYPE]
            existing["description"] += "\n\n`application/problem+json`:\n" + problem["description"]
            continue
        codes = existing["content"][PROBLEM_MEDIA_TYPE]["schema"]["properties"]["code"]["enum"] if existing else []
        if code not in codes:
            # Retry-After is documented on every 503 by app.openapi.
            route.responses[503] = problem_responses(*codes, code)[503]
