"""What the service stops needing is purged: expired challenges, lockout rows whose window passed,
the sandbox avisos of ended certification attempts; by `sia purgar` and on a schedule in `sia serve`."""

import asyncio
import datetime as dt
import uuid

import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from app import certificaciones, purge
from app.db import async_url
from app.main import create_app
from app.models import BloqueoToken, Reto, SandboxAviso, SandboxSolicitud
from tests.test_cli import sia

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


async def _reto(db, rfc: str, expira_en: dt.datetime) -> None:
    await db.execute(
        insert(Reto).values(id=uuid.uuid4(), rfc=rfc, reto=b"x" * 32, creado_en=expira_en - HOUR, expira_en=expira_en)
    )


async def _count(db, model, *where) -> int:
    return await db.scalar(select(func.count()).select_from(model).where(*where))


async def test_one_pass_removes_only_what_is_no_longer_needed(session, settings):
    for rfc, expira_en in (("AAA010101AA1", NOW - 48 * HOUR), ("BBB010101BB2", NOW - HOUR), ("CCC010101CC3", NOW)):
        await _reto(session, rfc, expira_en)
    window = dt.timedelta(minutes=settings.lockout_minutes)
    for rfc, primer_fallo, hasta in (
        ("AAA010101AA1", NOW - 2 * window, None),  # old failures, never locked: gone
        ("BBB010101BB2", NOW - 2 * window, NOW - window),  # a lockout that ended: gone
        ("CCC010101CC3", NOW - 2 * window, NOW + HOUR),  # still locked: kept
        ("DDD010101DD4", NOW - dt.timedelta(minutes=1), None),  # failures inside the window: kept
    ):
        row = {"rfc": rfc, "fallos": 1, "primer_fallo": primer_fallo, "bloqueado_hasta": hasta}
        await session.execute(insert(BloqueoToken).values(**row))
    running = await certificaciones.open_intento(session, "XIQB891116QE4", settings, NOW)
    cancelled = await certificaciones.open_intento(session, "GODE561231GR8", settings, NOW - 2 * HOUR)
    approved = await certificaciones.open_intento(session, "SAT970701NN3", settings, NOW - 3 * HOUR)
    expired = await certificaciones.open_intento(session, "EKU9003173C9", settings, NOW - 30 * 24 * HOUR)
    cancelled.estado, approved.estado = "cancelada", "aprobada"
    for cert in (running, cancelled, approved, expired):
        await certificaciones.log_request(
            session, cert.id, at=NOW - HOUR, status=200, params={}, despues_de=None, entregados=1
        )
    await session.flush()
    running_avisos = await _count(session, SandboxAviso, SandboxAviso.certificacion_id == running.id)

    purged = await purge.purge(await session.connection(), settings, NOW)

    assert await _count(session, Reto) == 2, "an expired challenge stays a day, to be answered as expired"
    assert set(await session.scalars(select(BloqueoToken.rfc))) == {"CCC010101CC3", "DDD010101DD4"}
    assert await _count(session, SandboxAviso) == running_avisos > 0, "only the open attempt keeps its sandbox"
    kept_logs = set(await session.scalars(select(SandboxSolicitud.certificacion_id)))
    assert kept_logs == {running.id, approved.id}, "an approved attempt keeps the evidence it was judged on"
    assert (purged.retos, purged.bloqueos, purged.sandbox_solicitudes) == (1, 2, 2) and purged.sandbox_avisos > 0
    again = await purge.purge(await session.connection(), settings, NOW)
    assert again.as_dict() == dict.fromkeys(again.as_dict(), 0)


def test_sia_purgar(new_database):
    url = new_database()

    async def old_reto() -> None:
        engine = create_async_engine(async_url(url))
        async with engine.begin() as conn:
            await _reto(conn, "AAA010101AA1", dt.datetime.now(dt.UTC) - 48 * HOUR)
        await engine.dispose()

    asyncio.run(old_reto())
    result = sia("purgar", env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "Purgados: 1 retos, 0 bloqueos" in result.stdout


@pytest.fixture
def empty_db(new_database) -> str:
    return new_database()


async def test_serve_purges_on_a_schedule(empty_db, settings, tmp_path):
    url = empty_db
    engine = create_async_engine(async_url(url))
    async with engine.begin() as conn:
        await _reto(conn, "AAA010101AA1", dt.datetime.now(dt.UTC) - 48 * HOUR)
    app = create_app(
        settings.model_copy(update={"database_url": url, "data_dir": tmp_path}),
        purge_every=dt.timedelta(seconds=0.2),
    )
    async with LifespanManager(app):
        for _ in range(50):
            async with engine.connect() as conn:
                left = await conn.scalar(text("SELECT count(*) FROM reto"))
            if left == 0:
                break
            await asyncio.sleep(0.1)
    await engine.dispose()
    assert left == 0
