"""The commit contract of a request's session (app.deps.committed, docs/arquitectura.md): a route that returns
keeps its writes; one that raises loses them, unless it raised a Problem with keep_writes=True.

Through the real session dependency on the suite's PostgreSQL (not the tests' savepoint override), so what is
checked is what production commits; the rows are deleted afterwards."""

import datetime as dt
from collections.abc import AsyncIterator

import httpx2
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.deps import SessionDep
from app.main import create_app
from app.models import BloqueoToken
from app.problems import Problem
from app.settings import Settings

# Not RFCs any other test writes: each outcome leaves (or not) its own row.
RFCS = {"devuelve": "CCX000000AA1", "problema": "CCX000000AA2", "conserva": "CCX000000AA3", "error": "CCX000000AA4"}


@pytest.fixture
async def client(settings: Settings, engine: AsyncEngine) -> AsyncIterator[httpx2.AsyncClient]:
    app = create_app(settings)

    @app.post("/prueba/{outcome}")
    async def write_then(outcome: str, session: SessionDep) -> dict[str, str]:
        now = dt.datetime.now(dt.UTC)
        await session.execute(insert(BloqueoToken).values(rfc=RFCS[outcome], fallos=1, primer_fallo=now))
        if outcome == "problema":
            raise Problem("prohibido", "Un problema cualquiera.")
        if outcome == "conserva":
            raise Problem("credenciales_incorrectas", "Un fallo que se cuenta.", keep_writes=True)
        if outcome == "error":
            raise RuntimeError("un error que no es un problema")
        return {"ok": outcome}

    try:
        async with LifespanManager(app) as manager:
            transport = httpx2.ASGITransport(app=manager.app, raise_app_exceptions=False)
            async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield client
    finally:
        async with engine.begin() as conn:
            await conn.execute(delete(BloqueoToken).where(BloqueoToken.rfc.in_(RFCS.values())))


async def _written(engine: AsyncEngine, outcome: str) -> bool:
    async with engine.connect() as conn:
        return (await conn.scalar(select(BloqueoToken.fallos).where(BloqueoToken.rfc == RFCS[outcome]))) is not None


async def test_a_returning_route_keeps_its_writes(client, engine):
    assert (await client.post("/prueba/devuelve")).status_code == 200
    assert await _written(engine, "devuelve")


async def test_a_raised_problem_leaves_no_write(client, engine):
    answer = await client.post("/prueba/problema")
    assert answer.status_code == 403 and answer.json()["code"] == "prohibido"
    assert not await _written(engine, "problema")


async def test_a_problem_that_keeps_writes_commits_them_before_the_answer(client, engine):
    answer = await client.post("/prueba/conserva")
    assert answer.status_code == 401 and answer.json()["code"] == "credenciales_incorrectas"
    assert await _written(engine, "conserva")


async def test_any_other_exception_rolls_back(client, engine):
    assert (await client.post("/prueba/error")).status_code == 500
    assert not await _written(engine, "error")
