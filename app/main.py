"""The FastAPI application, built by create_app(settings): no engine or app at import time."""

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from fastapi.routing import APIRoute
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.audit_writer import AuditWriter
from app.db import Database, Timeouts, asyncpg_dsn, is_unavailable
from app.deps import State, document_database_errors, install_database_errors
from app.docs import install_docs
from app.keys_store import KeySync
from app.logging import looks_like_request_id
from app.middleware import BodyLimit, SecurityHeaders
from app.notify import Notifier
from app.ocsp import OcspChecker
from app.openapi import install_openapi
from app.problems import install_problem_handlers
from app.purge import purge_periodically
from app.routers import acuses, avisos, catalogos, certificaciones, confianza, health, identidad, patrones
from app.routers import portal as portal_routes
from app.security.keys import load_keys
from app.security.passwords import VerificationGate
from app.security.rate_limit import RateLimiter
from app.settings import Settings

DESCRIPTION = """
El **Servicio de Intercomunicación de Avisos** entrega a patrones y a sus desarrolladores de nómina,
en JSON y de forma masiva, los avisos de retención, modificación y suspensión de descuentos que
Infonavit emite sobre los créditos de vivienda de sus trabajadores.

Los errores siguen RFC 9457 (`application/problem+json`) con un `code` estable y `title`/`detail` en español.

Límites de toda solicitud: el cuerpo, hasta 64 KiB (`413 solicitud_demasiado_grande`; una prueba de e.firma
ocupa unos 30 KB); la línea y los encabezados, hasta 16 KiB (`431`), enviados en 10 s (si no, `408` y se cierra
la conexión). Fechas y horas, de 1900-01-01 a 2199-12-31; una hora sin zona es la del centro de México.
"""


def _operation_id(route: APIRoute) -> str:
    # Stable ids for generated clients: each route states its own operation_id; fall back to its name.
    return route.operation_id or route.name


def create_app(settings: Settings, *, purge_every: dt.timedelta | None = None) -> FastAPI:
    """purge_every: run app.purge on that schedule while serving (`sia serve`; tests purge explicitly)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[State]:
        if not settings.database_url:
            raise RuntimeError("create_app necesita settings.database_url (sia serve lo resuelve)")
        database = Database.from_settings(settings)
        database.audit = AuditWriter(database.sessionmaker, retryable=is_unavailable)
        if settings.avisos_lean_path and not settings.database_read_url:
            # With a replica the pages are read there and the access rule on the primary: two servers, so
            # one statement cannot hold both, and every page takes the route.
            timeouts = Timeouts.from_settings(settings)
            await database.open_lean_pool(settings.database_url, settings.db_pool_size, timeouts)
        notifier = Notifier(recheck_seconds=settings.espera_recheck_seconds)
        await notifier.start(asyncpg_dsn(settings.database_url))
        keys = load_keys(settings)
        # Other replicas' public keys: learned before serving when the database answers, then kept current.
        key_sync = KeySync(database.engine, keys, settings.keys_refresh_seconds)
        await key_sync.once()
        key_sync.start()
        limiter = RateLimiter(enabled=settings.rate_limit_enabled, storage_uri=settings.rate_limit_storage)
        purging = asyncio.create_task(purge_periodically(database, settings, purge_every)) if purge_every else None
        try:
            yield State(
                database=database,
                settings=settings,
                keys=keys,
                notifier=notifier,
                rate_limiter=limiter,
                password_gate=VerificationGate(settings.password_verifications_max),
                ocsp=OcspChecker.from_settings(settings),
            )
        finally:
            if purging is not None:
                purging.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purging
            await key_sync.stop()
            await notifier.stop()
            await limiter.close()
            await database.dispose()

    app = FastAPI(
        # ASCII: code generators name the client package after the title (the full name opens the description).
        title="SIA Infonavit",
        version="1.0.0",
        description=DESCRIPTION.strip(),
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        docs_url=None,
        redoc_url=None,
    )
    install_openapi(app, settings)
    install_docs(app)
    install_problem_handlers(app)
    install_database_errors(app)
    # The last added is the outermost: the request id is set before the 413 is written, and the 413 gets the
    # security headers too. 500s are answered outside all of them (problems._unexpected sets their headers).
    if settings.avisos_lean_path:
        app.add_middleware(avisos.LeanListing)  # innermost: every middleware below applies to its answers
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, oauth_paths=["/v1/token"])
    app.add_middleware(SecurityHeaders)
    # A client's X-Request-ID reaches responses and the audit log only when it looks like an id.
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID", validator=looks_like_request_id)
    if settings.trusted_proxies:
        # The one place X-Forwarded-For is read (`sia serve` runs uvicorn with proxy_headers=False): from a
        # trusted proxy only, the rightmost address that is not a trusted proxy becomes request.client, so
        # rate limits and uvicorn's access log see the client. Added last, it runs first.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    app.include_router(health.router)
    app.include_router(catalogos.router)
    app.include_router(identidad.router)
    app.include_router(acuses.router)
    app.include_router(patrones.router)
    app.include_router(confianza.router)
    app.include_router(avisos.router)
    app.include_router(certificaciones.router)
    app.include_router(avisos.sandbox_router)
    app.include_router(portal_routes.router)
    app.mount("/portal/static", portal_routes.PortalStatic(directory=portal_routes.STATIC), name="portal-static")
    document_database_errors(app)
    return app
