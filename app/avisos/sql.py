"""Reading avisos: publication order, keyset cursor, filters, and streaming straight from a COPY.

Publication order is (publicacion_xid, id), read only below pg_snapshot_xmin(pg_current_snapshot()): a
row is returned only once no running transaction can still add a row before it, so an aviso published
while a client pages or syncs is delivered exactly once, even when loads commit out of order.

Rows leave PostgreSQL as COPY text (its fastest output) and become JSON here with one bytes-format per
row; a bounded queue between the COPY and the socket keeps memory flat whatever the page size."""

import asyncio
import datetime as dt
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.models.aviso import CAMPOS_AVISO

CHUNK_BYTES = 128 * 1024
QUEUE_CHUNKS = 8  # at most this many COPY chunks wait for the socket: memory stays flat
HORIZON = "(SELECT pg_snapshot_xmin(pg_current_snapshot()))"


@dataclass(frozen=True)
class Scope:
    """Where avisos are read from: production, or one certification attempt's sandbox."""

    table: str = "aviso"
    certificacion_id: uuid.UUID | None = None


PRODUCTION = Scope()


def sandbox_scope(certificacion_id: uuid.UUID) -> Scope:
    return Scope("sandbox_aviso", certificacion_id)


@dataclass(frozen=True)
class Filtros:
    rfc_patron: str
    nrps: list[str] | None = None  # None: every NRP of the employer
    clase: str | None = None
    tipo_aviso: str | None = None
    nss: str | None = None
    emitidos_desde: dt.date | None = None
    emitidos_hasta: dt.date | None = None
    folio: str | None = None
    scope: Scope = PRODUCTION

    def as_dict(self) -> dict:
        return {
            k: (v.isoformat() if isinstance(v, dt.date) else v)
            for k, v in self.__dict__.items()
            if v is not None and k != "scope"
        }


@dataclass(frozen=True)
class Cursor:
    xid: str
    id: int


class CursorDesconocido(Exception):
    pass


_SAFE_LITERAL = re.compile(r"^[0-9A-Za-z&Ñ:.\- ]*$")


def _literal(value: object) -> str:
    """A SQL literal for COPY, which takes no bind parameters. Every value here has already passed strict
    validation (RFC, NRP, NSS, codes, dates, numbers); the assertion keeps it that way."""
    if isinstance(value, int):
        return str(value)
    rendered = value.isoformat() if isinstance(value, dt.date) else str(value)
    if not _SAFE_LITERAL.match(rendered):
        raise ValueError(f"unexpected characters in a query value: {rendered!r}")
    return "'" + rendered + "'"


def _where(f: Filtros, cursor: Cursor | None) -> str:
    conditions = [f"rfc_patron = {_literal(f.rfc_patron)}", f"publicacion_xid < {HORIZON}"]
    if f.scope.certificacion_id is not None:
        conditions.append(f"certificacion_id = {_literal(str(f.scope.certificacion_id))}")
    if f.nrps is not None:
        conditions.append(f"nrp IN ({', '.join(_literal(n) for n in f.nrps) or 'NULL'})")
    for column in ("clase", "tipo_aviso", "nss", "folio"):
        if getattr(f, column) is not None:
            conditions.append(f"{column} = {_literal(getattr(f, column))}")
    if f.emitidos_desde is not None:
        conditions.append(f"fecha_emision >= {_literal(f.emitidos_desde)}")
    if f.emitidos_hasta is not None:
        conditions.append(f"fecha_emision <= {_literal(f.emitidos_hasta)}")
    if cursor is not None:
        conditions.append(f"(publicacion_xid, id) > ({_literal(cursor.xid)}::xid8, {_literal(cursor.id)})")
    return " AND ".join(conditions)


# As the API shows them: amounts as exact text, publicado_en as ISO 8601 in UTC.
_RENDERED = {
    "valor_descuento": "valor_descuento::text",
    "publicado_en": "to_char(publicado_en AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
}
_COLUMNS = ", ".join(_RENDERED.get(c, c) for c in CAMPOS_AVISO)


def page_query(f: Filtros, cursor: Cursor | None, limite: int) -> str:
    return (
        f"SELECT {_COLUMNS} FROM {f.scope.table} WHERE {_where(f, cursor)} "
        f"ORDER BY publicacion_xid, id LIMIT {_literal(limite)}"
    )


async def find_cursor(
    conn: AsyncConnection, rfc_patron: str, folio: str, scope: Scope = PRODUCTION, *, nrps: list[str] | None = None
) -> Cursor:
    """The position of a folio the client holds; only within what it may read (the employer, the sandbox, the
    NRPs its relationship covers), so a folio it may not read is as unknown as one that does not exist."""
    f = Filtros(rfc_patron, nrps=nrps, folio=folio, scope=scope)
    where = _where(f, None).replace(f" AND publicacion_xid < {HORIZON}", "")
    row = (await conn.execute(text(f"SELECT publicacion_xid::text, id FROM {scope.table} WHERE {where}"))).first()
    if row is None:
        raise CursorDesconocido(folio)
    return Cursor(row[0], row[1])


async def has_rows(engine: AsyncEngine, query: str) -> bool:
    async with engine.connect() as conn:
        return bool(await conn.scalar(text(f"SELECT EXISTS ({query})")))


async def locate(conn: AsyncConnection, folio: str, scope: Scope = PRODUCTION) -> tuple[str, str] | None:
    """(rfc_patron, nrp) of a published aviso, to authorize reading it."""
    owner = f" AND certificacion_id = {_literal(str(scope.certificacion_id))}" if scope.certificacion_id else ""
    row = (
        await conn.execute(
            text(
                f"SELECT rfc_patron, nrp FROM {scope.table} WHERE folio = :folio AND publicacion_xid < {HORIZON}{owner}"
            ),
            {"folio": folio},
        )
    ).first()
    return (row[0], row[1]) if row else None


async def fetch_one(conn: AsyncConnection, filtros: Filtros) -> dict | None:
    row = (await conn.execute(text(page_query(filtros, None, 1)))).first()
    return dict(zip(CAMPOS_AVISO, row, strict=True)) if row else None


# ------------------------------------------------------------------ COPY text -> JSON

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


async def stream_page(
    engine: AsyncEngine, query: str, limite: int, stream: Stream, *, ndjson: bool
) -> AsyncIterator[bytes]:
    """Yields the response body in ~64 KiB chunks; the query asks for limite + 1 rows to learn hay_mas."""
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
            async with engine.connect() as conn:
                raw = await conn.get_raw_connection()
                assert raw.driver_connection is not None  # None only for a closed connection
                await raw.driver_connection.copy_from_query(query, output=collect)
            if batch:
                await queue.put(bytes(batch))
        finally:
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
        if not ndjson:
            yield (
                (b'{"avisos":[' if first else b"") + b'],"hay_mas":' + (b"true" if stream.hay_mas else b"false") + b"}"
            )
    finally:
        if not producer.done():
            producer.cancel()
