"""A page of avisos streamed straight from a COPY.

Rows leave PostgreSQL as COPY text (its fastest output) and become JSON here with one bytes-format per row; a
bounded queue between the COPY and the socket keeps memory flat whatever the page size.

A COPY interrupted half-way (the client left, the server is stopping, the database failed) leaves its connection
in the middle of the protocol. Such a connection is terminated and invalidated, never returned to the pool,
where the next request would find it busy (asyncpg: "cannot switch to state 15; another operation is in
progress") or cut its answer. SQLAlchemy cannot know it: the COPY runs on the raw driver connection, and a
cancelled checkin neither resets nor invalidates it (sqlalchemy/sqlalchemy#6592, #12077)."""

import asyncio
import datetime as dt
import re
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

import anyio
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from app.models.aviso import CAMPOS_AVISO

CHUNK_BYTES = 128 * 1024
QUEUE_CHUNKS = 8  # at most this many COPY chunks wait for the socket: memory stays flat


# One aviso as JSON, filled from the COPY text fields with a single bytes-format.
_TEMPLATE = (b"{" + b",".join(b'"%s":"%%s"' % c.encode() for c in CAMPOS_AVISO) + b"}").replace(b"%%s", b"%s")
# Characters JSON must escape, except the tab that separates COPY fields and the newline that ends a row. A
# newline inside a field never reaches here raw: COPY text writes it as a backslash sequence, which matches.
_NEEDS_CARE = re.compile(rb'["\\\x00-\x08\x0b-\x1f]')


def _copy_text_field(raw: bytes) -> str:
    """Undo COPY text escaping (backslash sequences)."""
    out, i, text_ = [], 0, raw.decode()
    escapes = {"t": "\t", "n": "\n", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "\\": "\\"}
    while i < len(text_):
        ch = text_[i]
        if ch == "\\" and i + 1 < len(text_):
            out.append(escapes.get(text_[i + 1], text_[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def row_to_json(line: bytes) -> bytes:
    """A COPY text line of the page query as one JSON object."""
    if _NEEDS_CARE.search(line) is None:
        return _TEMPLATE % tuple(line.split(b"\t"))
    # Quotes, backslashes or control characters (only nombre_trabajador can carry them): the slow, exact path.
    return orjson.dumps(dict(zip(CAMPOS_AVISO, (_copy_text_field(f) for f in line.split(b"\t")), strict=True)))


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
    separator = b"\n" if ndjson else b","
    try:
        while (chunk := await queue.get()) is not None:
            block, _, pending = (pending + chunk).rpartition(b"\n")
            if not block:
                continue
            lines = block.split(b"\n")
            room = limite - rows_seen
            rows_seen += len(lines)
            if rows_seen > limite:  # the query asked for one row more than the page, to learn hay_mas
                stream.hay_mas = True
                lines = lines[: max(room, 0)]
            if not lines:
                continue
            if _NEEDS_CARE.search(block) is None:
                # The common case, in one comprehension: a bytes-format per row, no per-row branching.
                rendered = separator.join([_TEMPLATE % tuple(line.split(b"\t")) for line in lines])
            else:  # some row needs escaping: each row checks for itself
                rendered = separator.join([row_to_json(line) for line in lines])
            if ndjson:
                body = rendered + b"\n"
            else:
                body = (b'{"avisos":[' if first else b",") + rendered
            first = False
            # Counted when handed to the server: what leaves the socket after that is not knowable here.
            stream.entregados = min(rows_seen, limite)
            yield body
        await producer  # surfaces a database error
        stream.completo = True
        if ndjson:
            yield ndjson_end(stream.hay_mas)
        else:
            yield (
                (b'{"avisos":[' if first else b"") + b'],"hay_mas":' + (b"true" if stream.hay_mas else b"false") + b"}"
            )
    finally:
        producer.cancel()
        # Waited for, shielded: whatever ended the page, its connection is back in the pool or terminated
        # before the response is over. gather retrieves the producer's error, already raised above if any.
        with anyio.CancelScope(shield=True):
            await asyncio.gather(producer, return_exceptions=True)
