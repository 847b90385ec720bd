"""Exactly once: an aviso published while a client syncs is delivered to it once, never skipped, even when
loads commit concurrently and out of order (a bigserial alone would skip rows committed late)."""

import asyncio
import random
import tempfile
from pathlib import Path

import orjson
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from app import loaders
from app.avisos import sql
from app.avisos import stream as streaming
from app.db import async_url
from app.demo import demo_avisos
from tests import factories as f
from tests.avisos_world import A


@pytest.fixture
def db_url(new_database) -> str:
    return new_database()


@pytest.fixture
async def engine(db_url, tmp_path):
    engine = create_async_engine(async_url(db_url), pool_size=20, max_overflow=5)
    async with engine.begin() as conn:
        await loaders.load_patrones(conn, f.write_patrones_csv(tmp_path / "p.csv", [A]))
    yield engine
    await engine.dispose()


def _batch(folder: Path, index: int, count: int) -> tuple[Path, list[str]]:
    records = list(demo_avisos([A], count, seed=index, hasta=f.HASTA))
    return f.write_ndjson(folder / f"lote-{index}.ndjson", records), [r["folio"] for r in records]


async def _sync(engine, cursor: sql.Cursor | None, limite: int = 10) -> tuple[list[str], sql.Cursor | None]:
    """One incremental sync step, as a client does it: a page after its cursor."""
    stream, body = streaming.Stream(), b""
    query = sql.page_query(sql.Filtros(A.rfc), cursor, limite + 1)
    async for chunk in streaming.stream_page(engine, query, limite, stream, ndjson=True):
        body += chunk
    *lines, end = body.splitlines()
    assert orjson.loads(end) == {"fin": True, "hay_mas": stream.hay_mas}, "a whole page ends with its final line"
    folios = [orjson.loads(line)["folio"] for line in lines]
    if folios:
        async with engine.connect() as conn:
            cursor = await sql.find_cursor(conn, A.rfc, folios[-1])
    return folios, cursor


async def test_a_later_transaction_committing_first_is_held_back(engine):
    with tempfile.TemporaryDirectory() as folder:
        first, first_folios = _batch(Path(folder), 1, 5)
        second, second_folios = _batch(Path(folder), 2, 5)
        async with engine.connect() as slow, engine.connect() as fast:
            slow_tx = await slow.begin()
            await loaders.load_avisos(slow, first, today=f.TODAY)  # takes the older transaction id
            async with fast.begin():
                await loaders.load_avisos(fast, second, today=f.TODAY)
            seen, cursor = await _sync(engine, None)
            assert seen == [], "committed, but behind an older running load: not yet published"
            await slow_tx.commit()
    seen, cursor = await _sync(engine, cursor, limite=100)
    assert seen == first_folios + second_folios


async def test_concurrent_loads_in_random_commit_order_reach_a_syncing_client_exactly_once(engine):
    rng = random.Random(2026)
    delivered: list[str] = []
    published: list[str] = []
    loads_done = asyncio.Event()

    async def load(path: Path, folios: list[str]) -> None:
        await asyncio.sleep(rng.random() * 0.3)
        async with engine.connect() as conn, conn.begin():
            await loaders.load_avisos(conn, path, today=f.TODAY)
            await asyncio.sleep(rng.random() * 0.4)  # commit later, in an order unrelated to the ids taken
        published.extend(folios)

    async def client() -> None:
        cursor = None
        while True:
            done_before = loads_done.is_set()
            folios, cursor = await _sync(engine, cursor, limite=rng.randint(3, 15))
            delivered.extend(folios)
            if done_before and not folios:
                return
            await asyncio.sleep(0.01)

    with tempfile.TemporaryDirectory() as folder:
        batches = [_batch(Path(folder), i, rng.randint(5, 30)) for i in range(1, 13)]
        syncing = asyncio.create_task(client())
        await asyncio.gather(*(load(path, folios) for path, folios in batches))
        loads_done.set()
        await syncing
    assert len(delivered) == len(set(delivered)), "no aviso twice"
    assert sorted(delivered) == sorted(published), "none skipped"


async def test_large_pages_span_many_chunks_in_both_formats(engine):
    with tempfile.TemporaryDirectory() as folder:
        path, folios = _batch(Path(folder), 5, 3000)
        async with engine.begin() as conn:
            await loaders.load_avisos(conn, path, today=f.TODAY)
    query = sql.page_query(sql.Filtros(A.rfc), None, 2501)
    bodies = {}
    for ndjson in (True, False):
        stream, chunks = streaming.Stream(), []
        async for chunk in streaming.stream_page(engine, query, 2500, stream, ndjson=ndjson):
            chunks.append(chunk)
        # Several chunks: the framing (separators, the closing member) is exercised across chunk boundaries.
        assert len(chunks) >= 2 and stream.hay_mas and stream.completo and stream.entregados == 2500
        bodies[ndjson] = b"".join(chunks)
    as_json = orjson.loads(bodies[False])
    assert as_json["hay_mas"] is True
    *lines, end = bodies[True].splitlines()
    assert [orjson.loads(line) for line in lines] == as_json["avisos"]
    assert orjson.loads(end) == {"fin": True, "hay_mas": True}
    assert [a["folio"] for a in as_json["avisos"]] == folios[:2500]


def test_fast_and_exact_row_paths_agree():
    plain = b"\t".join(
        [
            b"20260100000001",
            b"01",
            b"retencion",
            b"AAA010101AAA",
            b"Y5412345109",
            b"92919084431",
            b"GODE561231GR8",
            b"BEML920313HMCLNS09",
            b"MU\xc3\x91OZ PEREZ JUAN",
            b"1234567890",
            b"01",
            b"VIG",
            b"1",
            b"20.0000",
            b"2026-01-01",
            b"2026-01-02",
            b"2026-01-02T00:00:00.000000Z",
        ]
    )
    assert streaming._NEEDS_CARE.search(plain) is None, "a plain row takes the fast path"
    fast = orjson.loads(streaming.row_to_json(plain))
    exact = dict(zip(streaming.CAMPOS_AVISO, (streaming._copy_text_field(x) for x in plain.split(b"\t")), strict=True))
    assert fast == exact and fast["nombre_trabajador"] == "MUÑOZ PEREZ JUAN"
    tricky = plain.replace(b"MU\xc3\x91OZ PEREZ JUAN", b'JUAN \\\\ "EL" \\t PEREZ')
    assert orjson.loads(streaming.row_to_json(tricky))["nombre_trabajador"] == 'JUAN \\ "EL" \t PEREZ'
