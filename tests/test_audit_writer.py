"""The background audit writer (app/audit_writer.py) against a real PostgreSQL: rows arrive after the flush,
shutdown writes what is queued, a full queue makes the request write its own row, a bad row loses only itself."""

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from app.audit_writer import AuditWriter
from app.auditoria import event_values
from app.db import async_url

ACTION = "prueba.escritor"


@pytest.fixture
def url(new_database) -> str:
    return new_database()


@pytest.fixture
def empty_url(new_database) -> str:
    return new_database(migrated=False)


@pytest.fixture
async def engine(url) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(async_url(url))
    yield engine
    await engine.dispose()


def writer(engine: AsyncEngine, **options) -> AuditWriter:
    return AuditWriter(async_sessionmaker(engine), **options)


async def record(audit: AuditWriter, n: int, **overrides) -> None:
    event = {"accion": ACTION, "actor": "AAA010101AAA", "rfc_patron": "TRN920807B50", "cantidad": n}
    await audit.record(event_values(**{**event, **overrides}, now=dt.datetime.now(dt.UTC), detalle={"n": n}))


async def written(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT cantidad FROM evento_auditoria WHERE accion = :a ORDER BY id"), {"a": ACTION}
        )
        return [r.cantidad for r in rows]


async def test_rows_arrive_after_the_flush_not_in_the_request(engine):
    audit = writer(engine, flush_seconds=0.3)
    for n in range(3):
        await record(audit, n)
    assert await written(engine) == [], "queued: the request wrote nothing itself"
    for _ in range(40):
        await asyncio.sleep(0.05)
        if await written(engine):
            break
    assert await written(engine) == [0, 1, 2], "one batch, in order"
    await audit.close()


async def test_shutdown_writes_what_is_queued(engine):
    audit = writer(engine, flush_seconds=3600)
    for n in range(5):
        await record(audit, n)
    await audit.close()
    assert await written(engine) == [0, 1, 2, 3, 4]
    await record(audit, 5)  # after shutdown: written by its request, never queued and forgotten
    assert await written(engine) == [0, 1, 2, 3, 4, 5]


async def test_a_full_queue_makes_the_request_write_its_own_row(engine):
    audit = writer(engine, flush_seconds=3600, queue_rows=2)
    for n in range(5):
        await record(audit, n)
    assert await written(engine) == [2, 3, 4], "no room: written at once, none dropped, none waiting"
    assert audit.written_inline == 3
    await audit.close()
    assert sorted(await written(engine)) == [0, 1, 2, 3, 4]


async def test_a_database_error_loses_only_the_bad_row_and_the_writer_goes_on(engine):
    audit = writer(engine, flush_seconds=0.05)
    await record(audit, 1)
    await record(audit, 2, relacion_id=uuid.uuid4())  # no such relationship: the foreign key refuses the batch
    await record(audit, 3)
    for _ in range(60):
        await asyncio.sleep(0.05)
        if len(await written(engine)) == 2:
            break
    assert await written(engine) == [1, 3] and audit.lost == 1
    await record(audit, 4)  # the writer survived the error: later rows are still written by it
    for _ in range(60):
        await asyncio.sleep(0.05)
        if len(await written(engine)) == 3:
            break
    assert await written(engine) == [1, 3, 4] and audit.written_inline == 0
    await audit.close()


async def test_a_batch_the_unavailable_database_refused_is_tried_again(engine, empty_url):
    """Unavailable (not a bad row): the batch is held and written once the database answers again."""
    healthy = async_sessionmaker(engine)
    broken_engine = create_async_engine(async_url(empty_url))
    broken = async_sessionmaker(broken_engine)  # a database without the table: every write fails
    audit = AuditWriter(broken, retryable=lambda _error: True, flush_seconds=3600)
    await record(audit, 1)
    await audit.flush()
    assert await written(engine) == [] and audit.lost == 0, "held, not lost"
    audit._sessionmaker = healthy  # the database is back
    await audit.close()
    assert await written(engine) == [1]
    await broken_engine.dispose()
