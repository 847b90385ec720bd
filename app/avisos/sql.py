"""The SQL of reading avisos: publication order, keyset cursor, filters, and the block query a page streams.

Publication order is each employer's seq, which publishers assign under a per-employer lock held until
commit (app/publicacion.py): within one employer seq order is commit order, so a reader needs no horizon
and an aviso published while a client pages or syncs is delivered exactly once, even under concurrent loads."""

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from sqlalchemy import Integer, String, any_, bindparam, case, func, literal, or_, select, text
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.confianza import access_statement
from app.models import Aviso


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
    seq: int  # the publication seq of the folio the client holds


class CursorDesconocido(Exception):
    pass


_SAFE_LITERAL = re.compile(r"^[0-9A-Za-z&Ñ:.\- ]*$")


def _literal(value: object) -> str:
    """A SQL literal for a filter: a page's filters are part of its statement's text, so that each combination
    is planned for itself (a generic plan over optional filters, `$n IS NULL OR column = $n`, cannot drop the
    ones not given). Every value here has already passed strict validation (RFC, NRP, NSS, codes, dates,
    numbers); the assertion keeps it that way."""
    if isinstance(value, int):
        return str(value)
    rendered = value.isoformat() if isinstance(value, dt.date) else str(value)
    if not _SAFE_LITERAL.match(rendered):
        raise ValueError(f"unexpected characters in a query value: {rendered!r}")
    return "'" + rendered + "'"


def _where(f: Filtros, cursor: Cursor | None) -> str:
    conditions = [f"rfc_patron = {_literal(f.rfc_patron)}"]
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
        conditions.append(f"seq > {_literal(cursor.seq)}")
    return " AND ".join(conditions)


def page_query(f: Filtros, cursor: Cursor | None, limite: int) -> str:
    """Each aviso's JSON as it was rendered when written (models/aviso.py), in publication order."""
    return f"SELECT json FROM {f.scope.table} WHERE {_where(f, cursor)} ORDER BY seq LIMIT {_literal(limite)}"


def block_query(f: Filtros) -> str:
    """One block of a page (app/avisos/stream.py): $2 avisos after seq $1, in publication order, their JSON
    as rendered when written, one per line (JSON text holds no raw newline), as bytea so that the driver hands
    over the bytes as they are; with the block's last seq and its count."""
    return (
        "SELECT convert_to(string_agg(json, E'\\n' ORDER BY seq), 'UTF8') AS cuerpo, max(seq) AS hasta, "
        f"count(*) AS filas FROM (SELECT json, seq FROM {f.scope.table} WHERE {_where(f, None)} AND seq > $1 "
        "ORDER BY seq LIMIT $2) AS bloque"
    )


def after(cursor: Cursor | None) -> int:
    """The seq a page starts after: publication seqs start at 1 (app/publicacion.py)."""
    return cursor.seq if cursor is not None else 0


async def find_cursor(
    conn: AsyncConnection, rfc_patron: str, folio: str, scope: Scope = PRODUCTION, *, nrps: list[str] | None = None
) -> Cursor:
    """The position of a folio the client holds; only within what it may read (the employer, the sandbox, the
    NRPs its relationship covers), so a folio it may not read is as unknown as one that does not exist."""
    f = Filtros(rfc_patron, nrps=nrps, folio=folio, scope=scope)
    seq = await conn.scalar(text(f"SELECT seq FROM {scope.table} WHERE {_where(f, None)}"))
    if seq is None:
        raise CursorDesconocido(folio)
    return Cursor(seq)


def rows_query(f: Filtros, cursor: Cursor | None) -> str:
    """Whether a page after cursor would hold anything: a long poll's question, and the key that waiters
    asking the same one share (app/notify.py)."""
    return f"SELECT EXISTS ({page_query(f, cursor, 1)})"


async def has_rows(engine: AsyncEngine, f: Filtros, cursor: Cursor | None) -> bool:
    """rows_query's answer, on a connection of its own."""
    async with engine.connect() as conn:
        return bool(await conn.scalar(text(rows_query(f, cursor))))


async def locate(conn: AsyncConnection, folio: str, scope: Scope = PRODUCTION) -> tuple[str, str] | None:
    """(rfc_patron, nrp) of a published aviso, to authorize reading it."""
    owner = f" AND certificacion_id = {_literal(str(scope.certificacion_id))}" if scope.certificacion_id else ""
    row = (
        await conn.execute(
            text(f"SELECT rfc_patron, nrp FROM {scope.table} WHERE folio = :folio{owner}"),
            {"folio": folio},
        )
    ).first()
    return (row[0], row[1]) if row else None


async def fetch_one(conn: AsyncConnection, filtros: Filtros) -> dict | None:
    """The aviso's fields as the pages serve them (the same rendering, parsed back)."""
    rendered = await conn.scalar(text(page_query(filtros, None, 1)))
    return orjson.loads(rendered) if rendered is not None else None


# ------------------------------------------------------------------ the hot path: one statement


def _lean_page() -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """The common page (an employer's avisos, perhaps some NRPs, after a cursor) and everything that decides
    whether the caller may have it, in one statement and one round trip: the access rule itself
    (confianza.access_statement(), its verdict included, not a copy of it), the cursor within what the
    caller may read, and the page, which holds rows only when `motivo` is NULL. Compiled once, for asyncpg:
    (SQL with $n parameters, their names in order, the values of the statement's own constants)."""
    acceso = access_statement().cte("acceso")
    a = Aviso.__table__.alias("a")
    patron = bindparam("patron", type_=String())
    despues = bindparam("despues_de", type_=String())
    allowed = acceso.c.motivo.is_(None)
    cursor = (
        select(a.c.seq)
        .select_from(acceso)
        .where(
            allowed,
            a.c.folio == despues,
            a.c.rfc_patron == patron,
            or_(acceso.c.legibles.is_(None), a.c.nrp == any_(acceso.c.legibles)),
        )
        .cte("cursor")
    )
    page = (
        select(a.c.json, a.c.seq)
        .select_from(acceso)
        .where(
            allowed,
            a.c.rfc_patron == patron,
            or_(acceso.c.lee_nrps.is_(None), a.c.nrp == any_(acceso.c.lee_nrps)),
            # One range condition on the index, not `$despues IS NULL OR seq > cursor`: a generic plan cannot
            # drop that OR, and filtered every row of the employer from its first (2 s on a deep page of 1M).
            # seq starts at 1; an unknown cursor reads nothing (the route answers it).
            a.c.seq
            > func.coalesce(
                select(cursor.c.seq).scalar_subquery(), case((despues.is_(None), 0), else_=literal(2**63 - 1))
            ),
        )
        .order_by(a.c.seq)
        .limit(bindparam("filas", type_=Integer()))
        .cte("pagina")
    )
    statement = select(
        # What confianza.verdict() reads.
        *(acceso.c[column] for column in ("motivo", "lee_nrps", "legibles", "relaciones")),
        select(cursor.c.seq).scalar_subquery().label("cursor_seq"),
        select(func.count()).select_from(page).scalar_subquery().label("filas"),
        select(func.max(page.c.seq)).scalar_subquery().label("hasta"),  # where a streamed page goes on
        # One line per aviso, in publication order: JSON text holds no raw newline. As bytea, so the driver
        # hands over the bytes as they are, instead of decoding them to text for the server to encode again.
        select(func.convert_to(func.string_agg(page.c.json, aggregate_order_by(literal("\n"), page.c.seq)), "UTF8"))
        .scalar_subquery()
        .label("cuerpo"),
    )
    compiled = statement.compile(dialect=asyncpg_dialect.dialect())  # type: ignore[no-untyped-call]
    assert compiled.positiontup is not None  # a positional dialect
    return str(compiled), tuple(compiled.positiontup), dict(compiled.params)


LEAN_PAGE_SQL, _LEAN_PAGE_PARAMS, _LEAN_PAGE_CONSTANTS = _lean_page()


@dataclass(frozen=True)
class LeanPage:
    acceso: Any  # the access statement's row (confianza.verdict reads it)
    cursor_seq: int | None
    filas: int
    cuerpo: bytes | None  # the avisos' JSON in UTF-8, one per line (`filas` of them)
    hasta: int | None  # the last one's seq


async def lean_page(
    conn: asyncpg.Connection,
    *,
    rfc: str,
    credencial_id: uuid.UUID,
    patron: str,
    nrps: list[str] | None,
    despues_de: str | None,
    filas: int,
    at: dt.datetime,
) -> LeanPage:
    """The hot statement on a driver connection (asyncpg prepares it once per connection): the first `filas`
    avisos after the cursor (a page's limite + 1, to learn hay_mas, or a streamed page's first block)."""
    values = {
        **_LEAN_PAGE_CONSTANTS,
        "rfc": rfc,
        "credencial_id": credencial_id,
        "patron": patron,
        "nrps": nrps,
        "despues_de": despues_de,
        "filas": filas,
        "at": at,
    }
    row = await conn.fetchrow(LEAN_PAGE_SQL, *(values[name] for name in _LEAN_PAGE_PARAMS))
    assert row is not None  # the statement always answers one row
    return LeanPage(row, row["cursor_seq"], row["filas"], row["cuerpo"], row["hasta"])
