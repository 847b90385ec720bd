"""Exactly once: an aviso published while a client syncs is delivered to it once, never skipped, even when
loads commit concurrently and out of order (a bigserial alone would skip rows committed late)."""

import asyncio
import datetime as dt
import random
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from app import loaders, publicacion
from app.avisos import sql
from app.avisos import stream as streaming
from app.db import Database, async_url
from app.demo import demo_avisos
from app.settings import Settings
from tests import factories as f
from tests.avisos_world import A, B


@pytest.fixture
def db_url(new_database) -> str:
    return new_database()


@pytest.fixture
async def engine(db_url, tmp_path):
    engine = create_async_engine(async_url(db_url), pool_size=20, max_overflow=5)
    async with engine.begin() as conn:
        await loaders.load_patrones(conn, f.write_patrones_csv(tmp_path / "p.csv", [A, B]))
    yield engine
    await engine.dispose()


def _batch(folder: Path, index: int, count: int, employer=A) -> tuple[Path, list[str]]:
    records = list(demo_avisos([employer], count, seed=index, hasta=f.HASTA))
    return f.write_ndjson(folder / f"lote-{index}.ndjson", records), [r["folio"] for r in records]


async def _sync(engine, cursor: sql.Cursor | None, limite: int = 10) -> tuple[list[str], sql.Cursor | None]:
    """One incremental sync step, as a client does it: a page after its cursor."""
    stream, body = streaming.Stream(), b""
    query = sql.block_query(sql.Filtros(A.rfc))
    async for chunk in streaming.stream_page(engine, query, sql.after(cursor), limite, stream, ndjson=True):
        body += chunk
    *lines, end = body.splitlines()
    assert orjson.loads(end) == {"fin": True, "hay_mas": stream.hay_mas}, "a whole page ends with its final line"
    folios = [orjson.loads(line)["folio"] for line in lines]
    if folios:
        async with engine.connect() as conn:
            cursor = await sql.find_cursor(conn, A.rfc, folios[-1])
    return folios, cursor


async def _waiting_for_a_publication_lock(engine) -> None:
    async with engine.connect() as conn:
        while not await conn.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")):
            await asyncio.sleep(0.02)


async def test_a_later_load_of_the_same_employer_waits_for_the_earlier_one_to_commit(engine):
    """The earlier load holds the employer's publication lock until it commits: the later one cannot
    publish, and so cannot commit first and be passed over by a client already past it."""
    with tempfile.TemporaryDirectory() as folder:
        first, first_folios = _batch(Path(folder), 1, 5)
        second, second_folios = _batch(Path(folder), 2, 5)

        async def later_load() -> None:
            async with engine.begin() as fast:
                await loaders.load_avisos(fast, second, today=f.TODAY)

        async with engine.connect() as slow:
            slow_tx = await slow.begin()
            await loaders.load_avisos(slow, first, today=f.TODAY)
            later = asyncio.create_task(later_load())
            await asyncio.wait_for(_waiting_for_a_publication_lock(engine), timeout=10)
            seen, cursor = await _sync(engine, None)
            assert seen == [] and not later.done(), "neither published while the earlier load is open"
            await slow_tx.commit()
            await later
    seen, cursor = await _sync(engine, cursor, limite=100)
    assert seen == first_folios + second_folios


async def test_another_employers_open_load_and_an_idle_transaction_hold_nothing_back(engine):
    """Nothing outside an employer's own publication can delay it: not another employer's load still open
    (of any length), not a session idling in a transaction that holds a transaction id."""
    async with engine.connect() as conn:
        # Employers share publication locks by bucket (publicacion.LOCK_BUCKETS): these two must not, or the open
        # load would hold the other back by design, for as long as its one transaction lasts.
        buckets = text(f"SELECT {publicacion.lock_bucket(':a')} <> {publicacion.lock_bucket(':b')}")
        assert await conn.scalar(buckets, {"a": A.rfc, "b": B.rfc})
    with tempfile.TemporaryDirectory() as folder:
        theirs, _ = _batch(Path(folder), 3, 50, employer=B)
        ours, our_folios = _batch(Path(folder), 4, 20)
        async with engine.connect() as long_load, engine.connect() as idle:
            await long_load.begin()
            await loaders.load_avisos(long_load, theirs, today=f.TODAY)
            await idle.begin()
            await idle.execute(text("SELECT pg_current_xact_id()"))  # idle in transaction, holding an xid
            async with engine.begin() as conn:
                await loaders.load_avisos(conn, ours, today=f.TODAY)
            seen, _ = await asyncio.wait_for(_sync(engine, None, limite=100), timeout=1)
            assert seen == our_folios, "delivered at once, while the other two are still open"
            await long_load.rollback()


async def test_concurrent_loads_in_random_commit_order_reach_a_syncing_client_exactly_once(engine, monkeypatch):
    # Blocks of 2: a page of 3-15 avisos is read in several statements, each in its own snapshot, while the
    # loads commit between them.
    monkeypatch.setattr(streaming, "BLOCK_ROWS", 2)
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


async def test_a_load_killed_mid_publication_leaves_whole_chunks_in_order_and_a_rerun_completes(engine, monkeypatch):
    monkeypatch.setattr(publicacion, "CHUNK_ROWS", 10)
    publish, calls = publicacion.publish_records, []

    async def dies_in_the_third_chunk(conn, *args, **kwargs):
        inserted = await publish(conn, *args, **kwargs)
        calls.append(inserted)
        if len(calls) == 3:  # inserted, not committed: the backend goes away, as under kill -9
            await conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return inserted

    with tempfile.TemporaryDirectory() as folder:
        path, folios = _batch(Path(folder), 6, 35)
        monkeypatch.setattr(publicacion, "publish_records", dies_in_the_third_chunk)
        with pytest.raises(DBAPIError):
            async with engine.connect() as conn:
                await loaders.load_avisos(conn, path, today=f.TODAY)
        assert calls == [10, 10, 10]
        seen, cursor = await _sync(engine, None, limite=100)
        assert seen == folios[:20], "the two committed chunks, in file order; nothing of the third"
        monkeypatch.setattr(publicacion, "publish_records", publish)
        async with engine.connect() as conn:
            report = await loaders.load_avisos(conn, path, today=f.TODAY)
    assert (report.nuevos, report.existentes) == (15, 20)
    rest, _ = await _sync(engine, cursor, limite=100)
    assert rest == folios[20:]
    everything, _ = await _sync(engine, None, limite=100)
    assert everything == folios, "rows = file, once each"


async def test_concurrent_chunked_loads_of_the_same_file_skip_what_the_other_published(engine, monkeypatch):
    monkeypatch.setattr(publicacion, "CHUNK_ROWS", 7)
    with tempfile.TemporaryDirectory() as folder:
        path, folios = _batch(Path(folder), 7, 60)

        async def load() -> loaders.LoadReport:
            async with engine.connect() as conn:
                return await loaders.load_avisos(conn, path, today=f.TODAY)

        reports = await asyncio.gather(load(), load(), load())
    assert sum(r.nuevos for r in reports) == 60 and all(r.nuevos + r.existentes == 60 for r in reports)
    everything, _ = await _sync(engine, None, limite=100)
    assert sorted(everything) == sorted(folios) and len(everything) == 60


async def test_folios_another_load_publishes_before_a_chunks_copy_are_skipped(engine, monkeypatch):
    """A chunk of new avisos is copied at once, unchecked against what is published; a concurrent load that has
    published some of its folios meanwhile makes that COPY fail on the folio, and the chunk is then checked and
    published without them: the rows are the file's, once each, in file order."""
    monkeypatch.setattr(publicacion, "CHUNK_ROWS", 10)
    publish = publicacion.publish_records
    with tempfile.TemporaryDirectory() as folder:
        path, folios = _batch(Path(folder), 8, 25)
        first_lines = f.write_ndjson(
            Path(folder) / "primeras.ndjson", list(demo_avisos([A], 25, seed=8, hasta=f.HASTA))[:15]
        )

        async def another_load_gets_there_first(conn, *args, **kwargs):
            monkeypatch.setattr(publicacion, "publish_records", publish)
            async with engine.begin() as other:
                assert (await loaders.load_avisos(other, first_lines, today=f.TODAY)).nuevos == 15
            return await publish(conn, *args, **kwargs)

        monkeypatch.setattr(publicacion, "publish_records", another_load_gets_there_first)
        async with engine.connect() as conn:
            report = await loaders.load_avisos(conn, path, today=f.TODAY)
    assert (report.nuevos, report.existentes) == (10, 15)
    everything, _ = await _sync(engine, None, limite=100)
    assert everything == folios


async def test_folios_another_load_publishes_between_the_check_and_the_copy_are_skipped(engine, monkeypatch):
    """A chunk that is checked first (it repeats a folio) can still meet folios a concurrent load publishes after
    the check: its COPY fails on the folio, and the rows go in by INSERT … ON CONFLICT DO NOTHING instead."""
    records = list(demo_avisos([A], 10, seed=16, hasta=f.HASTA))
    with tempfile.TemporaryDirectory() as folder:
        path = f.write_ndjson(Path(folder) / "a.ndjson", [*records, records[0]])  # the repeat: checked first
        other = f.write_ndjson(Path(folder) / "b.ndjson", records[3:6])
        check, raced, fallback = loaders._published_checks, [], []

        async def another_load_right_after_the_check(pending, batch, checked, *, stopped):
            await check(pending, batch, checked, stopped=stopped)
            if not raced:
                raced.append(True)
                async with engine.begin() as conn:
                    assert (await loaders.load_avisos(conn, other, today=f.TODAY)).nuevos == 3

        publish = publicacion.publish

        async def counted(*args, **kwargs):
            fallback.append(True)
            return await publish(*args, **kwargs)

        monkeypatch.setattr(loaders, "_published_checks", another_load_right_after_the_check)
        monkeypatch.setattr(publicacion, "publish", counted)
        async with engine.connect() as conn:
            report = await loaders.load_avisos(conn, path, today=f.TODAY)
    assert raced and fallback, "the COPY met the other load's folios"
    assert (report.nuevos, report.existentes) == (7, 3)
    everything, _ = await _sync(engine, None, limite=100)
    assert sorted(everything) == sorted(r["folio"] for r in records) and len(everything) == 10


async def test_a_chunk_of_thousands_of_employers_takes_a_bounded_number_of_locks(engine):
    """A national file mixes many employers in one chunk. One advisory lock per employer would put as many locks
    in one transaction, and PostgreSQL's lock table is shared and small (64 per connection by default: 20,000
    in one transaction fail with "out of shared memory"). Employers share LOCK_BUCKETS locks instead."""
    employers = 3 * publicacion.LOCK_BUCKETS
    with tempfile.TemporaryDirectory() as folder:
        path, _ = _batch(Path(folder), 9, 1)
        async with engine.begin() as conn:
            await loaders.load_avisos(conn, path, today=f.TODAY)
    cols = [c for c in loaders._AVISO_COLUMNS if c not in ("folio", "rfc_patron", "nrp")]
    source = f"""SELECT '9' || lpad(g::text, 13, '0') AS folio, 'EMP' || lpad(g::text, 9, '0') AS rfc_patron,
                        'N' || lpad(g::text, 10, '0') AS nrp, {", ".join(f"a.{c}" for c in cols)}, g AS orden
                 FROM aviso a, generate_series(1, {employers}) AS g"""
    async with engine.begin() as conn:
        registry = f"SELECT 'EMP' || lpad(g::text, 9, '0') AS rfc, g FROM generate_series(1, {employers}) g"
        await conn.execute(
            text(f"INSERT INTO patron (rfc, razon_social) SELECT rfc, 'Patrón ' || g FROM ({registry}) r")
        )
        await conn.execute(
            text(f"INSERT INTO nrp (nrp, rfc_patron) SELECT 'N' || lpad(g::text, 10, '0'), rfc FROM ({registry}) r")
        )
        inserted = await publicacion.publish(conn, "aviso", ("folio", "rfc_patron", "nrp", *cols), source)
        held = await conn.scalar(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
        )
    assert inserted == employers
    assert 0 < held <= publicacion.LOCK_BUCKETS


async def test_large_pages_span_many_blocks_in_both_formats(engine):
    with tempfile.TemporaryDirectory() as folder:
        path, folios = _batch(Path(folder), 5, 5000)
        async with engine.begin() as conn:
            await loaders.load_avisos(conn, path, today=f.TODAY)
    bodies = {}
    for ndjson in (True, False):
        stream, chunks = streaming.Stream(), []
        query = sql.block_query(sql.Filtros(A.rfc))
        async for chunk in streaming.stream_page(engine, query, 0, 4500, stream, ndjson=ndjson):
            chunks.append(chunk)
        # Several blocks and the end: the framing (separators, the closing member) is exercised across them.
        assert len(chunks) == -(-4500 // streaming.BLOCK_ROWS) + 1 >= 3
        assert stream.hay_mas and stream.completo and stream.entregados == 4500
        bodies[ndjson] = b"".join(chunks)
    as_json = orjson.loads(bodies[False])
    assert as_json["hay_mas"] is True
    *lines, end = bodies[True].splitlines()
    assert [orjson.loads(line) for line in lines] == as_json["avisos"]
    assert orjson.loads(end) == {"fin": True, "hay_mas": True}
    assert [a["folio"] for a in as_json["avisos"]] == folios[:4500]


async def _page(engine, after: int, limite: int, *, ndjson: bool) -> tuple[bytes, streaming.Stream]:
    stream, body, query = streaming.Stream(), b"", sql.block_query(sql.Filtros(A.rfc))
    async for chunk in streaming.stream_page(engine, query, after, limite, stream, ndjson=ndjson):
        body += chunk
    return body, stream


@pytest.mark.parametrize("ndjson", [True, False])
async def test_a_page_is_the_same_whatever_blocks_it_is_read_in(engine, monkeypatch, ndjson):
    """Pages that end inside a block, at its end, one row past it, or run out of avisos: each is the page
    whole_page makes of the same avisos, with hay_mas only when an aviso follows the page."""
    with tempfile.TemporaryDirectory() as folder:
        path, _ = _batch(Path(folder), 6, 30)
        async with engine.begin() as conn:
            await loaders.load_avisos(conn, path, today=f.TODAY)
            rows = await conn.execute(text(f"SELECT json, seq FROM aviso WHERE rfc_patron = '{A.rfc}' ORDER BY seq"))
            rendered, seqs = zip(*rows, strict=True)
    monkeypatch.setattr(streaming, "BLOCK_ROWS", 7)
    for start in (0, 3):
        after = seqs[start - 1] if start else 0
        for limite in (1, 6, 7, 8, 13, 14, 15, 29 - start, 30 - start, 31 - start, 100):
            body, stream = await _page(engine, after, limite, ndjson=ndjson)
            page = rendered[start : start + limite]
            hay_mas = start + limite < len(rendered)
            assert body == streaming.whole_page("\n".join(page).encode(), hay_mas, ndjson=ndjson), (start, limite)
            assert (stream.entregados, stream.hay_mas, stream.completo) == (len(page), hay_mas, True)


async def test_avisos_published_between_two_blocks_of_a_page_follow_in_it_once(engine, monkeypatch):
    """Each block is its own statement, in its own snapshot: what a load commits while a page is read comes
    later in that page, after everything published before it, as it would on the client's next page."""
    monkeypatch.setattr(streaming, "BLOCK_ROWS", 5)
    with tempfile.TemporaryDirectory() as folder:
        first, first_folios = _batch(Path(folder), 7, 12)
        second, second_folios = _batch(Path(folder), 8, 6)
        async with engine.begin() as conn:
            await loaders.load_avisos(conn, first, today=f.TODAY)
        stream, chunks = streaming.Stream(), []
        query = sql.block_query(sql.Filtros(A.rfc))
        async for chunk in streaming.stream_page(engine, query, 0, 16, stream, ndjson=True):
            chunks.append(chunk)
            if len(chunks) == 1:  # sent: the first block; asked for meanwhile: the second; not yet: the third
                async with engine.begin() as conn:
                    await loaders.load_avisos(conn, second, today=f.TODAY)
    *lines, end = b"".join(chunks).splitlines()
    served = [orjson.loads(line)["folio"] for line in lines]
    assert served == first_folios + second_folios[:4] and orjson.loads(end)["hay_mas"] is True
    rest, _ = await _sync(engine, await _cursor(engine, served[-1]), limite=100)
    assert rest == second_folios[4:]


async def _cursor(engine, folio: str) -> sql.Cursor:
    async with engine.connect() as conn:
        return await sql.find_cursor(conn, A.rfc, folio)


async def test_the_services_own_sessions_end_a_transaction_left_idle(db_url, tmp_path):
    """An idle transaction no longer holds anyone's avisos back, but it would still hold locks and bloat:
    the service's connections carry idle_in_transaction_session_timeout from its settings."""
    settings = Settings(database_url=db_url, env="test", data_dir=tmp_path, db_idle_in_transaction_timeout_seconds=0.3)
    db = Database.from_settings(settings)
    try:
        async with db.sessionmaker() as session:
            assert await session.scalar(text("SHOW idle_in_transaction_session_timeout")) == "300ms"
            await session.execute(text("SELECT pg_current_xact_id()"))
            await asyncio.sleep(1)
            with pytest.raises(DBAPIError, match=r"idle-in-transaction timeout|terminat|closed"):
                await session.execute(text("SELECT 1"))
    finally:
        await db.dispose()


async def test_publish_records_stores_every_byte_copy_text_treats_specially(engine):
    """publish_records writes by COPY's text format, where a backslash, a tab, a newline and a carriage return in
    a value mean something: every value must still arrive exactly as given (and `\\N` must not become NULL)."""
    from tests.test_avisos import IDENTIFIERS, NAMES

    template = dict(next(demo_avisos([A], 1, seed=11, hasta=f.HASTA)), clase="retencion")
    records = [
        tuple({**template, "folio": f"2026110{i:07d}", "nombre_trabajador": name, "curp": curp}[c] for c in _COLUMNS)
        for i, (name, curp) in enumerate(zip(NAMES, [*IDENTIFIERS, "C"] * 2, strict=False))
    ]
    async with engine.begin() as conn:
        assert await publicacion.publish_records(conn, "aviso", _COLUMNS, records) == len(records)
        stored = (await conn.execute(text("SELECT folio, nombre_trabajador, curp FROM aviso ORDER BY folio"))).all()
    assert [tuple(row) for row in stored] == [
        (r[0], r[_COLUMNS.index("nombre_trabajador")], r[_COLUMNS.index("curp")]) for r in records
    ]


async def test_publish_records_writes_values_that_are_not_text_by_their_input_form(engine):
    """A Decimal, a date or a UUID by its str(), escaped like text; None as NULL (here refused by NOT NULL)."""
    template = dict(next(demo_avisos([A], 1, seed=15, hasta=f.HASTA)), clase="retencion")
    typed = {
        "valor_descuento": Decimal("12.5"),
        "fecha_emision": dt.date(2026, 1, 2),
        "nombre_trabajador": uuid.UUID(int=7),
    }
    record = tuple({**template, **typed}.get(c) for c in _COLUMNS)
    async with engine.begin() as conn:
        await publicacion.publish_records(conn, "aviso", _COLUMNS, [record])
        stored = (await conn.execute(text("SELECT valor_descuento, fecha_emision, nombre_trabajador FROM aviso"))).one()
    assert tuple(stored) == (Decimal("12.5000"), dt.date(2026, 1, 2), str(uuid.UUID(int=7)))
    with pytest.raises(asyncpg.NotNullViolationError) as refused:
        async with engine.begin() as conn:
            nameless = tuple(None if c == "nombre_trabajador" else v for c, v in zip(_COLUMNS, record, strict=True))
            await publicacion.publish_records(conn, "aviso", _COLUMNS, [("20261990000001", *nameless[1:])])
    assert refused.value.column_name == "nombre_trabajador"


async def test_publish_records_numbers_each_employer_after_its_last_aviso_in_list_order(engine):
    with tempfile.TemporaryDirectory() as folder:
        path, _ = _batch(Path(folder), 12, 3)
        async with engine.begin() as conn:
            await loaders.load_avisos(conn, path, today=f.TODAY)  # A's seq 1 to 3
    records = [
        tuple(dict(r, clase="retencion")[c] for c in _COLUMNS)
        for r in [*demo_avisos([A], 2, seed=13, hasta=f.HASTA), *demo_avisos([B], 2, seed=14, hasta=f.HASTA)]
    ]
    interleaved = [records[2], records[0], records[3], records[1]]  # B, A, B, A
    async with engine.begin() as conn:
        await publicacion.publish_records(conn, "aviso", _COLUMNS, interleaved)
        seqs = dict((await conn.execute(text("SELECT folio, seq FROM aviso"))).all())
    assert [seqs[r[0]] for r in interleaved] == [1, 4, 2, 5]


_COLUMNS = loaders._AVISO_COLUMNS
