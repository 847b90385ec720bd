"""The framework and database floor of a small page (DESIGN §7): Starlette + an asyncpg pool serving the same
page statement as GET /v1/avisos streams (sql.block_query), rendered to the same JSON, with no authentication,
authorization, rate limit or audit. `make bench` divides SIA's authenticated pages by this app's.

    DATABASE_URL=... uvicorn bench.floor:app      GET /v1/avisos?rfc_patron=RFC&limite=100
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.avisos.sql import Filtros, block_query
from app.db import asyncpg_dsn


async def _keep_as_is(_connection: asyncpg.Connection) -> None:
    """The pool's reset on release (RESET ALL and more, a round trip each time), skipped: this app never
    changes a connection's session state."""


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    size = int(os.environ.get("SIA_DB_POOL_SIZE", "10"))  # as many connections as SIA's pool
    dsn = asyncpg_dsn(os.environ["DATABASE_URL"])
    app.state.pool = await asyncpg.create_pool(dsn, min_size=size, max_size=size, reset=_keep_as_is)
    yield
    await app.state.pool.close()


async def page(request: Request) -> Response:
    limite = int(request.query_params.get("limite", "100"))
    query = block_query(Filtros(request.query_params["rfc_patron"]))
    async with request.app.state.pool.acquire() as conn:
        block = await conn.fetchrow(query, 0, limite + 1)  # one block: the page and the row that says more follow
    lines = (block["cuerpo"] or b"").split(b"\n")
    rendered = b",".join(lines[:limite])
    more = b"true" if block["filas"] > limite else b"false"
    return Response(b'{"avisos":[' + rendered + b'],"hay_mas":' + more + b"}", media_type="application/json")


app = Starlette(routes=[Route("/v1/avisos", page)], lifespan=lifespan)
