"""A page of avisos streamed straight from a COPY.

Each aviso's JSON was rendered once, when it was written (a generated column, migration 20261203_json); a page
relays those bytes as COPY text (PostgreSQL's fastest output) with no per-row work here: per chunk of rows,
undo COPY's one escape and put the separators in. A bounded queue between the COPY and the socket keeps memory
flat whatever the page size.

A COPY interrupted half-way (the client left, the server is stopping, the database failed) leaves its connection
in the middle of the protocol. Such a connection is terminated and invalidated, never returned to the pool,
where the next request would find it busy (asyncpg: "cannot switch to state 15; another operation is in
progress") or cut its answer. SQLAlchemy cannot know it: the COPY runs on the raw driver connection, and a
cancelled checkin neither resets nor invalidates it (sqlalchemy/sqlalchemy#6592, #12077)."""

import asyncio
import datetime as dt
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

CHUNK_BYTES = 128 * 1024
QUEUE_CHUNKS = 8  # at most this many COPY chunks wait for the socket: memory stays flat


# The page query selects one column, each aviso's JSON as rendered when it was written (models/aviso.py). In
# COPY text, JSON text can carry only one escape: its backslashes, doubled. It has no raw control character
# (JSON escapes them all), so no tab or newline of its own: a newline ends a row.
_COPY_BACKSLASH, _BACKSLASH = b"\\\\", b"\\"


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
    """A whole page at once, as stream_page would send it in chunks: lines are the avisos' JSON, one per line."""
    if ndjson:
        return (lines + b"\n" if lines else b"") + ndjson_end(hay_mas)
    if not lines:
        return json_end(True, hay_mas)
    return b'{"avisos":[' + lines.replace(b"\n", b",") + json_end(False, hay_mas)


async def _copy(engine: AsyncEngine, query: str, output: Callable[[bytes], Awaitable[None]]) -> None:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None  # None only for a closed connection
        try:
            await driver.copy_from_query(query, output=output)
        except BaseException:
            # Interrupted half-way through the COPY protocol, whatever the reason: the socket is closed at once
            # (terminate does not await, so no second cancellation can stop it half-way) and the pool forgets
            # the connection instead of handing it to the next request.
            driver.terminate()
            with anyio.CancelScope(shield=True):
                await conn.invalidate()
            raise


async def stream_page(
    engine: AsyncEngine, query: str, limite: int, stream: Stream, *, ndjson: bool
) -> AsyncGenerator[bytes, None]:
    """Yields the response body in chunks of about CHUNK_BYTES; the query asks for limite + 1 rows to learn
    hay_mas. The first chunk comes only once the connection is drawn and the first rows (or the whole page)
    have arrived, so a database that fails before that fails before any byte is sent."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=QUEUE_CHUNKS)

    async def produce() -> None:
        # asyncpg hands over one COPY message per row: batch them, or every row pays a queue hand-off.
        batch = bytearray()

        async def collect(data: bytes) -> None:
            batch.extend(data)
            if len(batch) >= CHUNK_BYTES:
                await queue.put(bytes(batch))
                batch.clear()

        try:
            await _copy(engine, query, collect)
            if batch:
                await queue.put(bytes(batch))
        finally:
            # The end marker, for a reader still reading. One that left cancelled this task and waits for
            # nothing, and its full queue would block this put for ever.
            task = asyncio.current_task()
            if task is None or not task.cancelling():
                await queue.put(None)

    producer = asyncio.create_task(produce())
    pending, rows_seen, first = b"", 0, True
    try:
        while (chunk := await queue.get()) is not None:
            # Whole rows only, each ending in its newline, so a doubled backslash never straddles two chunks.
            # asyncpg hands over whole COPY messages (one row each), so a chunk nearly always ends at a row: then
            # it is relayed without a copy. Only the rest of a row cut across chunks waits for the next one.
            if pending:
                chunk, pending = pending + chunk, b""
            end = chunk.rfind(b"\n") + 1
            if end < len(chunk):
                chunk, pending = chunk[:end], chunk[end:]
            if not chunk:
                continue
            room = limite - rows_seen
            rows_seen += chunk.count(b"\n")
            if rows_seen > limite:  # the query asked for one row more than the page, to learn hay_mas
                stream.hay_mas = True
                if room <= 0:
                    continue
                chunk = chunk[: len(chunk) - len(chunk.split(b"\n", room)[-1])]  # its first `room` rows
            # Most chunks hold no backslash: looking for one byte (memchr) costs far less than replace's search.
            rendered = chunk.replace(_COPY_BACKSLASH, _BACKSLASH) if _BACKSLASH in chunk else chunk
            if ndjson:
                body = rendered
            else:
                body = (b'{"avisos":[' if first else b",") + rendered[:-1].replace(b"\n", b",")
            first = False
            # Counted when handed to the server: what leaves the socket after that is not knowable here.
            stream.entregados = min(rows_seen, limite)
            yield body
        await producer  # surfaces a database error
        stream.completo = True
        if ndjson:
            yield ndjson_end(stream.hay_mas)
        else:
            yield json_end(first, stream.hay_mas)
    finally:
        producer.cancel()
        # Waited for, shielded: whatever ended the page, its connection is back in the pool or terminated
        # before the response is over. gather retrieves the producer's error, already raised above if any.
        with anyio.CancelScope(shield=True):
            await asyncio.gather(producer, return_exceptions=True)
