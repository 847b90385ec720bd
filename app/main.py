"""The FastAPI application, built by create_app(settings): no engine or app at import time."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.db import Database
from app.problems import install_problem_handlers
from app.routers import catalogos, health
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


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[dict]:
        if not settings.database_url:
            raise RuntimeError("create_app necesita settings.database_url (sia serve lo resuelve)")
        database = Database.connect(settings.database_url)
        try:
            yield {"database": database, "settings": settings}
        finally:
            await database.dispose()

    app = FastAPI(
        title="SIA — Servicio de Intercomunicación de Avisos",
        version="1.0.0",
        description=DESCRIPTION.strip(),
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    install_problem_handlers(app)
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")
    app.include_router(health.router)
    app.include_router(catalogos.router)
    return app
