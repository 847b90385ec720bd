"""A page of avisos streamed in blocks that PostgreSQL has already joined.

Each aviso's JSON was rendered once, when it was written (a generated column, migration 20261203_json). A page
is read in blocks of BLOCK_ROWS avisos, each one statement (sql.block_query) that answers one value: the
block's JSON texts joined one per line, in publication order, as bytea, so the driver hands over the bytes as
they are. Nothing here touches an aviso: no per-row message, escape or count. Against the COPY text this
replaced, per 100,000 avisos in pages of 10,000 on 2 cores: the server's CPU 0.21 → 0.12 s, PostgreSQL's
0.11 → 0.14 s (COPY sent a protocol message per row, which asyncpg parsed one by one, and doubled every
backslash, which had to be undone here).

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
from dataclasses import dataclass

import anyio
import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

# Avisos per block: ~1 MB of JSON. Per 100,000 avisos, blocks of 500 and 5,000 were slower than 1,000-2,000.
BLOCK_ROWS = 2000


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


async def _blocks(
    conn: asyncpg.Connection, query: str, after: int, limite: int, stream: Stream
) -> AsyncGenerator[bytes, None]:
    """The page's avisos after seq `after`, block by block, one per line; asks for limite + 1 of them in all,
    to learn hay_mas."""
    wanted, rows = min(BLOCK_ROWS, limite + 1), 0
    block = await conn.fetchrow(query, after, wanted)
    ahead: asyncio.Future | None = None
    try:
        while block is not None and block["filas"]:
            body, rows = block["cuerpo"], rows + block["filas"]
            if block["filas"] == wanted and rows <= limite:  # PostgreSQL reads on while this block is sent
                wanted = min(BLOCK_ROWS, limite + 1 - rows)
                ahead = asyncio.ensure_future(conn.fetchrow(query, block["hasta"], wanted))
            if rows > limite:  # the row past the page only says that more follow
                stream.hay_mas, body = True, body.rpartition(b"\n")[0]
            if body:
                stream.entregados = min(rows, limite)  # counted when handed to the server
                yield body
            block, ahead = (await ahead if ahead is not None else None), None
    finally:
        if ahead is not None:
            ahead.cancel()


async def stream_page(
    engine: AsyncEngine, query: str, after: int, limite: int, stream: Stream, *, ndjson: bool
) -> AsyncGenerator[bytes, None]:
    """The response body: the avisos after seq `after` (query is sql.block_query's for the page's filters),
    then the page's end. Its first chunk comes only once the connection is drawn and the first block has
    arrived."""
    first = True
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None  # None only for a closed connection
        try:
            async for lines in _blocks(driver, query, after, limite, stream):
                yield (lines + b"\n") if ndjson else ((b'{"avisos":[' if first else b",") + lines.replace(b"\n", b","))
                first = False
        except BaseException:
            # Interrupted with a statement in flight, whatever the reason: the socket is closed at once
            # (terminate does not await, so no second cancellation can stop it half-way) and the pool forgets
            # the connection instead of handing it to the next request.
            driver.terminate()
            with anyio.CancelScope(shield=True):
                await conn.invalidate()
            raise
    # The connection is back in the pool before the last bytes go: a client that leaves now costs it nothing.
    stream.completo = True
    yield ndjson_end(stream.hay_mas) if ndjson else json_end(first, stream.hay_mas)
