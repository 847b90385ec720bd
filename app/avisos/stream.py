"""A page of avisos streamed in blocks that PostgreSQL has already joined.

Each aviso's JSON was rendered once, when it was written (a generated column, migration 20261203_json). A page
is read in blocks of BLOCK_ROWS avisos, each one statement (sql.block_query) that answers one value: the
block's JSON texts joined one per line, in publication order, as bytea, so the driver hands over the bytes as
they are. Nothing here touches an aviso: no per-row message, escape or count. Against the COPY text this
replaced, per 100,000 avisos in pages of 10,000 on 2 cores: the server's CPU 0.21 → 0.12 s on the route
(0.065 s on the lean path, app/avisos/reading.py), PostgreSQL's 0.11 → 0.14 s. COPY sent a protocol message
per row, which asyncpg parsed one by one, and doubled every backslash, which had to be undone here.

A block starts after the last seq of the one before, each in a snapshot of its own. That is the keyset step a
client takes between pages, and safe for the same reason: within one employer seq order is commit order
(app/publicacion.py), so a block never finds a row that sorts before one already sent.

The page's first block is read before its first byte is yielded, so a database that fails then fails before
the status line is sent. The next block is asked for while the current one is handed to the socket.

A read interrupted half-way (the client left, the server is stopping, the database failed) may leave its
connection with a statement in flight. Such a connection is terminated and invalidated, never returned to the
pool: the statement runs on the raw driver connection, which SQLAlchemy's cancelled checkin neither resets nor
invalidates (sqlalchemy/sqlalchemy#6592, #12077). With the COPY this replaced, a connection handed back
half-way poisoned the pool (asyncpg: "cannot switch to state 15; another operation is in progress"); asyncpg
recovers a cancelled query by itself, but only after a cancel request of its own, and a terminated connection
needs no such reasoning."""

import asyncio
import datetime as dt
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

import anyio
import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

# Avisos per block: ~0.5 MB of JSON. 100,000 avisos in pages of 10,000, side by side in one run on 2 cores:
# blocks of 750 or 1,000 ran at ~485,000 avisos/s, of 1,250 at 348,000, of 2,000 at 330,000-356,000, of 500 at
# 480,000 (more statements), and one block per page at 200,000 (nothing overlaps with the first block).
BLOCK_ROWS = 1000


@dataclass
class Stream:
    """Counts what was handed to the server, for the audit row."""

    entregados: int = 0
    hay_mas: bool = False
    completo: bool = False
    recibida_en: dt.datetime | None = None


def ndjson_end(hay_mas: bool) -> bytes:
    """The last line of every NDJSON page: the page is whole, and whether more follow (the JSON page's
    hay_mas). A page that ends without it was cut."""
    return b'{"fin":true,"hay_mas":' + (b"true" if hay_mas else b"false") + b"}\n"


def json_end(first: bool, hay_mas: bool) -> bytes:
    """The end of a JSON page: the opening too when no aviso came (first), then hay_mas."""
    return (b'{"avisos":[' if first else b"") + b'],"hay_mas":' + (b"true" if hay_mas else b"false") + b"}"


def whole_page(lines: bytes, hay_mas: bool, *, ndjson: bool) -> bytes:
    """A whole page at once, as stream_page would send it in blocks: lines are the avisos' JSON, one per line."""
    if ndjson:
        return (lines + b"\n" if lines else b"") + ndjson_end(hay_mas)
    if not lines:
        return json_end(True, hay_mas)
    return b'{"avisos":[' + lines.replace(b"\n", b",") + json_end(False, hay_mas)


@dataclass(frozen=True)
class Block:
    """One statement's avisos: their JSON one per line, the last one's seq, how many."""

    cuerpo: bytes | None
    hasta: int | None
    filas: int


def first_block_rows(limite: int) -> int:
    """How many avisos a page's first block holds (a caller that reads it itself asks for as many)."""
    return min(BLOCK_ROWS, limite + 1)


async def _next_block(conn: asyncpg.Connection, query: str, after: int, filas: int) -> Block:
    row = await conn.fetchrow(query, after, filas)
    assert row is not None  # an aggregate answers one row, with filas 0 when there is nothing
    return Block(row["cuerpo"], row["hasta"], row["filas"])


async def page_chunks(
    conn: asyncpg.Connection,
    query: str,
    after: int,
    limite: int,
    stream: Stream,
    *,
    ndjson: bool,
    first: Block | None = None,
) -> AsyncGenerator[bytes, None]:
    """The page's body: its avisos after seq `after`, block by block, then its end. query is sql.block_query's
    for the page's filters; the page asks for limite + 1 avisos in all, to learn hay_mas. first: the first
    block, when the caller has read it already. Interrupted while reading, for any reason, it terminates conn
    (see above): its owner then only gives it back to its pool, which replaces it."""
    wanted, rows, opening = first_block_rows(limite), 0, True
    ahead: asyncio.Future[Block] | None = None
    try:
        block = first or await _next_block(conn, query, after, wanted)
        while block.filas:
            lines, rows = block.cuerpo or b"", rows + block.filas
            if block.filas == wanted and rows <= limite:  # PostgreSQL reads on while this block is sent
                assert block.hasta is not None  # a block with rows has a last one
                wanted = min(BLOCK_ROWS, limite + 1 - rows)
                ahead = asyncio.ensure_future(_next_block(conn, query, block.hasta, wanted))
            if rows > limite:  # the row past the page only says that more follow
                stream.hay_mas, lines = True, lines.rpartition(b"\n")[0]
            if lines:
                stream.entregados = min(rows, limite)  # counted when handed to the server
                if ndjson:
                    yield lines + b"\n"
                else:
                    yield (b'{"avisos":[' if opening else b",") + lines.replace(b"\n", b",")
                opening = False
            if ahead is None:
                break
            block, ahead = await ahead, None
    except BaseException:
        if ahead is not None:
            ahead.cancel()
            ahead.add_done_callback(lambda done: done.cancelled() or done.exception())  # nothing left to log
        # The socket is closed at once: terminate does not await, so no second cancellation can stop it half-way.
        conn.terminate()
        raise
    stream.completo = True
    yield ndjson_end(stream.hay_mas) if ndjson else json_end(opening, stream.hay_mas)


async def stream_page(
    engine: AsyncEngine, query: str, after: int, limite: int, stream: Stream, *, ndjson: bool
) -> AsyncGenerator[bytes, None]:
    """page_chunks on a connection of engine's pool. Its first chunk comes only once the connection is drawn
    and the first block has arrived."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None  # None only for a closed connection
        try:
            async with aclosing(page_chunks(driver, query, after, limite, stream, ndjson=ndjson)) as chunks:
                async for chunk in chunks:
                    yield chunk
        except BaseException:
            with anyio.CancelScope(shield=True):
                await conn.invalidate()  # the pool forgets it instead of handing it to the next request
            raise
