"""The FastAPI application, built by create_app(settings): no engine or app at import time."""

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.db import Database, asyncpg_dsn
from app.deps import Keys
from app.docs import install_docs
from app.notify import Notifier
from app.openapi import install_openapi
from app.problems import install_problem_handlers
from app.purge import purge_periodically
from app.routers import acuses, avisos, catalogos, certificaciones, confianza, health, identidad, patrones
from app.security.keys import KeyRing, rotate
from app.security.passwords import VerificationGate
from app.security.rate_limit import RateLimiter
from app.settings import Settings

DESCRIPTION = """
El **Servicio de Intercomunicación de Avisos** entrega a patrones y a sus desarrolladores de nómina,
en JSON y de forma masiva, los avisos de retención, modificación y suspensión de descuentos que
Infonavit emite sobre los créditos de vivienda de sus trabajadores.

Los errores siguen RFC 9457 (`application/problem+json`) con un `code` estable y `title`/`detail` en español.
"""


def _operation_id(route: APIRoute) -> str:
    # Stable ids for generated clients: each route states its own operation_id; fall back to its name.
    return route.operation_id or route.name


def load_keys(settings: Settings) -> Keys:
    """Token keys are published until their tokens expire; seal keys forever (acuses outlive rotations)."""
    ttl = dt.timedelta(minutes=settings.token_ttl_minutes + 1)
    folders = {"tokens": settings.keys_dir / "tokens", "sellos": settings.keys_dir / "sellos"}
    pems = {"tokens": settings.token_key_pem, "sellos": settings.seal_key_pem}
    rings = {}
    for name, folder in folders.items():
        pem = pems[name]
        ring = KeyRing(
            folder, retain=ttl if name == "tokens" else None, pem=pem.get_secret_value().encode() if pem else None
        )
        if ring.empty:
            if settings.env == "production":
                raise RuntimeError(f"no hay llave de firma en {folder}: ejecute `sia keys rotate` antes de servir")
            rotate(folder)  # development and tests: a key on first start
        rings[name] = ring
    return Keys(tokens=rings["tokens"], sellos=rings["sellos"])


def create_app(settings: Settings, *, purge_every: dt.timedelta | None = None) -> FastAPI:
    """purge_every: run app.purge on that schedule while serving (`sia serve`; tests purge explicitly)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[dict]:
        if not settings.database_url:
            raise RuntimeError("create_app necesita settings.database_url (sia serve lo resuelve)")
        database = Database.connect(settings.database_url)
        notifier = Notifier()
        await notifier.start(asyncpg_dsn(settings.database_url))
        limiter = RateLimiter(enabled=settings.rate_limit_enabled, storage_uri=settings.rate_limit_storage)
        purging = asyncio.create_task(purge_periodically(database, settings, purge_every)) if purge_every else None
        try:
            yield {
                "database": database,
                "settings": settings,
                "keys": load_keys(settings),
                "notifier": notifier,
                "rate_limiter": limiter,
                "password_gate": VerificationGate(settings.password_verifications_max),
            }
        finally:
            if purging is not None:
                purging.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purging
            await notifier.stop()
            await limiter.close()
            await database.dispose()

    app = FastAPI(
        title="SIA — Servicio de Intercomunicación de Avisos",
        version="1.0.0",
        description=DESCRIPTION.strip(),
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        docs_url=None,
        redoc_url=None,
    )
    install_openapi(app)
    install_docs(app)
    install_problem_handlers(app)
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")
    app.include_router(health.router)
    app.include_router(catalogos.router)
    app.include_router(identidad.router)
    app.include_router(acuses.router)
    app.include_router(patrones.router)
    app.include_router(confianza.router)
    app.include_router(avisos.router)
    app.include_router(certificaciones.router)
    app.include_router(avisos.sandbox_router)
    return app
