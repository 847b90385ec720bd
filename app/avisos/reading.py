"""Who may read which avisos, and the flow of one read: the production and sandbox policies (one body of flow
code, two data scopes), permission, audit, the long poll, and the stream of the page.

The routers translate HTTP to these calls and back: they parse the query into a ListQuery, build a Context,
and answer a Page or a Problem. No SQL travels between them and this module."""

import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
from asgi_correlation_id import correlation_id
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app import certificaciones
from app.auditoria import event_values, record_event
from app.avisos import sql
from app.avisos.stream import Block, Stream, first_block_rows, page_chunks, stream_page, whole_page
from app.catalogs import CATALOGOS, catalog_entries
from app.confianza import Autorizacion, Denegacion, authorize, is_certified, is_patron, verdict
from app.credenciales import require_still_active
from app.db import Database, is_unavailable
from app.notify import Notifier, Outcome
from app.problems import Problem
from app.security.rate_limit import RateLimited, RateLimiter
from app.security.tokens import Caller
from app.settings import Settings

REFUSED = "avisos.consulta_rechazada"


@dataclass(frozen=True)
class ListQuery:
    """A list request's parameters, as validated at the HTTP edge."""

    rfc_patron: str | None
    nrp: list[str] | None
    clase: str | None
    tipo_aviso: str | None
    nss: str | None
    emitidos_desde: dt.date | None
    emitidos_hasta: dt.date | None
    despues_de: str | None
    limite: int
    espera: int

    def as_dict(self) -> dict:
        return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Context:
    """What a read uses besides its query: one value instead of the same list on four routes."""

    caller: Caller
    session: AsyncSession
    settings: Settings
    database: Database
    notifier: Notifier
    limiter: RateLimiter


@dataclass(frozen=True)
class Permission:
    filtros: sql.Filtros
    relaciones: list[uuid.UUID]
    certificacion_id: uuid.UUID | None = None
    # The NRPs a despues_de folio may belong to (None = any of the employer): what the caller may read, not
    # only what this request filters, so that a cursor of another readable NRP still works.
    nrps_cursor: list[str] | None = None
    lote: int = 0  # sandbox: the attempt's last published lot, which a replica must hold before serving it


@dataclass(frozen=True)
class Page:
    """A permitted page: its body (nothing runs until it is iterated) and the rate-limit headers."""

    body: AsyncGenerator[bytes, None]
    headers: dict[str, str]


# ------------------------------------------------------------------ policies


class Policy(Protocol):
    name: str  # rate limits count each policy apart: certifying must not spend production quota

    def bound(self, q: ListQuery, settings: Settings) -> ListQuery: ...

    async def permit(self, session: AsyncSession, caller: Caller, q: ListQuery, now: dt.datetime) -> Permission: ...

    async def record(
        self, database: Database, caller: Caller, permission: Permission, q: ListQuery, stream: Stream
    ) -> None: ...

    async def reads_from(self, database: Database, permission: Permission) -> AsyncEngine:
        """Where the pages of this read come from: the replica (DATABASE_READ_URL) or the primary."""
        ...

    async def permit_one(
        self, session: AsyncSession, database: Database, caller: Caller, folio: str, now: dt.datetime
    ) -> sql.Filtros:
        """The filters that select that one aviso, once it may be read (production audits the read)."""
        ...


def _denied(denial: Denegacion, rfc_patron: str, *, keep_writes: bool = False) -> Problem:
    if denial.motivo == "sin_certificacion":
        return Problem(
            "sin_certificacion",
            "Su RFC no tiene una certificación aprobada y vigente; obténgala en /v1/certificaciones.",
            keep_writes=keep_writes,
        )
    return Problem(
        "sin_autorizacion",
        f"No puede leer avisos de {rfc_patron} con esos NRP: "
        "hace falta una relación de confianza vigente que los cubra.",
        keep_writes=keep_writes,
    )


def _not_found(folio: str, *, keep_writes: bool = False) -> Problem:
    return Problem("aviso_no_encontrado", f"No hay un aviso {folio} que usted pueda leer.", keep_writes=keep_writes)


class ProductionPolicy:
    """Production: the trust relationships decide, through the one authorization function."""

    name = "produccion"

    def bound(self, q: ListQuery, settings: Settings) -> ListQuery:
        if q.limite > settings.avisos_limite_max:
            maximum = settings.avisos_limite_max
            raise Problem("limite_fuera_de_rango", f"limite debe estar entre 1 y {maximum}.")
        return q

    async def permit(self, session: AsyncSession, caller: Caller, q: ListQuery, now: dt.datetime) -> Permission:
        if q.rfc_patron is None and not await is_patron(session, caller.rfc):
            # Otherwise the caller's own RFC would be taken as the employer and refused as if it had asked for it.
            raise Problem(
                "rfc_patron_requerido",
                "Indique de qué patrón quiere los avisos con rfc_patron: solo un patrón puede omitirlo "
                "para leer los suyos.",
            )
        patron = q.rfc_patron or caller.rfc
        auth = await authorize(session, caller.rfc, patron, q.nrp, now)
        if isinstance(auth, Denegacion):
            await _record_refusal(session, caller, patron, q.nrp, auth, {"consulta": q.as_dict()})
            raise _denied(auth, patron, keep_writes=True)  # the refusal's audit row is committed
        return self.permission(patron, q, auth)

    @staticmethod
    def permission(patron: str, q: ListQuery, auth: Autorizacion) -> Permission:
        filtros = sql.Filtros(patron, auth.nrps, q.clase, q.tipo_aviso, q.nss, q.emitidos_desde, q.emitidos_hasta)
        return Permission(filtros, auth.relaciones, nrps_cursor=auth.legibles)

    async def record(
        self, database: Database, caller: Caller, permission: Permission, q: ListQuery, stream: Stream
    ) -> None:
        detalle = {"limite": q.limite, "despues_de": q.despues_de, "completo": stream.completo}
        await _audit(database, caller, permission, stream.entregados, detalle)

    async def reads_from(self, database: Database, permission: Permission) -> AsyncEngine:
        # A lagging replica serves a prefix of each employer's seq order: later avisos arrive on a later call.
        return database.reads

    async def permit_one(
        self, session: AsyncSession, database: Database, caller: Caller, folio: str, now: dt.datetime
    ) -> sql.Filtros:
        certified = await is_certified(session, caller.rfc, now)
        located = await database.lookup(session, lambda conn: sql.locate(conn, folio), database.reads)
        if not certified:
            # Whether or not the folio exists: an uncertified caller cannot tell existing folios from missing ones.
            denial = Denegacion("sin_certificacion")
            if located is not None:
                await _record_refusal(session, caller, located[0], [located[1]], denial, {"folio": folio})
            raise _denied(denial, "", keep_writes=True)
        if located is None:
            raise _not_found(folio)
        auth = await authorize(session, caller.rfc, located[0], [located[1]], now)
        if isinstance(auth, Denegacion):
            await _record_refusal(session, caller, located[0], [located[1]], auth, {"folio": folio})
            # Not certified is about the caller; anything else looks like an aviso that does not exist.
            if auth.motivo == "sin_certificacion":
                raise _denied(auth, located[0], keep_writes=True)
            raise _not_found(folio, keep_writes=True)
        filtros = sql.Filtros(located[0], [located[1]], folio=folio)
        await _audit(database, caller, Permission(filtros, auth.relaciones), 1, {"folio": folio})
        return filtros


class SandboxPolicy:
    """The caller's open certification attempt: its own synthetic employer, no trust relationship needed."""

    name = "sandbox"

    def bound(self, q: ListQuery, settings: Settings) -> ListQuery:
        # Above production's maximum it refuses, as production does (the document states one maximum for
        # both); below it, it caps: a client asking for more gets 500 and hay_mas, so it must page.
        q = ProductionPolicy().bound(q, settings)
        return dataclasses.replace(q, limite=min(q.limite, settings.sandbox_limite_max))

    async def permit(self, session: AsyncSession, caller: Caller, q: ListQuery, now: dt.datetime) -> Permission:
        cert = await certificaciones.current_attempt(session, caller.rfc, now)
        if cert is None:
            raise Problem(
                "sin_intento_en_curso",
                "Abra un intento en POST /v1/certificaciones.",
            )
        # Set whenever an attempt is opened; only certifications granted without one lack them, and none is open.
        assert cert.sandbox_rfc is not None and cert.sandbox_nrps is not None
        if (q.rfc_patron and q.rfc_patron != cert.sandbox_rfc) or (q.nrp and not set(q.nrp) <= set(cert.sandbox_nrps)):
            raise Problem(
                "sin_autorizacion",
                f"El sandbox de su intento es el patrón {cert.sandbox_rfc} con los NRP {', '.join(cert.sandbox_nrps)}.",
            )
        retry = await certificaciones.trip_rate_limit(session, cert, now)
        if retry is not None:
            await certificaciones.log_request(
                session, cert.id, at=now, status=429, params=q.as_dict(), despues_de=q.despues_de, entregados=0
            )
            raise Problem(
                "limite_de_tasa",
                f"Escenario limite_de_tasa: espere {retry} s antes de la siguiente solicitud.",
                headers={"Retry-After": str(retry)},
                keep_writes=True,  # the logged request is evidence the attempt is judged on
            )
        filtros = sql.Filtros(
            cert.sandbox_rfc,
            q.nrp,
            q.clase,
            q.tipo_aviso,
            q.nss,
            q.emitidos_desde,
            q.emitidos_hasta,
            scope=sql.sandbox_scope(cert.id),
        )
        return Permission(filtros, [], cert.id, lote=certificaciones.ultimo_lote(cert))

    async def record(
        self, database: Database, caller: Caller, permission: Permission, q: ListQuery, stream: Stream
    ) -> None:
        # SandboxPolicy.permit names the attempt, and list_page stamps the stream when the request arrives.
        assert permission.certificacion_id is not None and stream.recibida_en is not None
        with anyio.CancelScope(shield=True):
            async with database.sessionmaker() as session:
                await certificaciones.log_request(
                    session,
                    permission.certificacion_id,
                    at=stream.recibida_en,
                    status=200,
                    params=q.as_dict(),
                    despues_de=q.despues_de,
                    entregados=stream.entregados,
                )
                await session.commit()

    async def reads_from(self, database: Database, permission: Permission) -> AsyncEngine:
        # The service judges the attempt's evidence against its own rows: a replica that has not replayed the
        # attempt's last lot yet would serve a short download, and a correct client would fail the scenario.
        assert permission.certificacion_id is not None  # SandboxPolicy.permit names the attempt
        replica = database.read_engine
        if replica is not None and await certificaciones.sandbox_replicado(
            replica, permission.certificacion_id, permission.lote
        ):
            return replica
        return database.engine

    async def permit_one(
        self, session: AsyncSession, database: Database, caller: Caller, folio: str, now: dt.datetime
    ) -> sql.Filtros:
        cert = await certificaciones.current_attempt(session, caller.rfc, now)
        scope = sql.sandbox_scope(cert.id) if cert else None
        located = (
            await database.lookup(session, lambda conn: sql.locate(conn, folio, scope), database.reads)
            if scope
            else None
        )
        if located is None or scope is None:
            raise _not_found(folio)
        # Not logged: the scenarios judge list requests, and a single read is not a download.
        return sql.Filtros(located[0], [located[1]], folio=folio, scope=scope)


# ------------------------------------------------------------------ audit


async def _audit(database: Database, caller: Caller, permission: Permission, cantidad: int, detalle: dict) -> None:
    # Queued for the background writer (app/audit_writer.py): no transaction of its own on the request's path.
    assert database.audit is not None  # set by the app's lifespan
    values = event_values(
        accion="avisos.consulta",
        actor=caller.rfc,
        rfc_patron=permission.filtros.rfc_patron,
        nrps=permission.filtros.nrps,
        cantidad=cantidad,
        relacion_id=permission.relaciones[0] if permission.relaciones else None,
        request_id=correlation_id.get(),
        detalle={
            "filtros": permission.filtros.as_dict(),
            "relaciones": [str(r) for r in permission.relaciones],
            **detalle,
        },
        now=dt.datetime.now(dt.UTC),
    )
    await database.audit.record(values)


async def _record_refusal(
    session: AsyncSession, caller: Caller, rfc_patron: str, nrps: list[str] | None, denial: Denegacion, detalle: dict
) -> None:
    """A refused read, for the employer's audit view: who tried to read its avisos and why it was refused. Written
    in the request's session, which the refusal's keep-writes problem commits."""
    # Like a read's row, it need not cost a WAL flush (nor let the caller time one: an existing folio's refusal
    # writes, a missing one's does not).
    await session.execute(text("SET LOCAL synchronous_commit = off"))
    await record_event(
        session,
        accion=REFUSED,
        actor=caller.rfc,
        rfc_patron=rfc_patron,
        nrps=nrps,
        cantidad=0,
        request_id=correlation_id.get(),
        detalle={"motivo": denial.motivo, **detalle},
        now=dt.datetime.now(dt.UTC),
    )


# ------------------------------------------------------------------ the flows


def _rate_key(policy: Policy, caller: Caller) -> str:
    """One budget per caller and policy, whichever path serves the read (the route, the lean path)."""
    return f"avisos:{policy.name}:{caller.rfc}"


async def list_page(policy: Policy, q: ListQuery, ctx: Context, *, ndjson: bool) -> Page:
    session, settings, database = ctx.session, ctx.settings, ctx.database
    quota = await ctx.limiter.hit(settings.rate_limit_avisos, _rate_key(policy, ctx.caller))
    q = policy.bound(q, settings)
    if q.emitidos_desde and q.emitidos_hasta and q.emitidos_desde > q.emitidos_hasta:
        raise Problem("rango_invalido", "emitidos_desde es posterior a emitidos_hasta.")
    if q.tipo_aviso is not None:
        tipos = await catalog_entries(session, CATALOGOS["tipos-aviso"])
        if q.tipo_aviso not in {tipo["codigo"] for tipo in tipos}:
            raise Problem("tipo_aviso_desconocido", f"{q.tipo_aviso} no está en el catálogo tipos-aviso.")
    received = dt.datetime.now(dt.UTC)
    permission = await policy.permit(session, ctx.caller, q, received)
    filtros = permission.filtros
    source = await policy.reads_from(database, permission)
    cursor = None
    if q.despues_de is not None:
        folio = q.despues_de

        async def find_cursor(conn: AsyncConnection) -> sql.Cursor | None:
            try:
                return await sql.find_cursor(
                    conn, filtros.rfc_patron, folio, filtros.scope, nrps=permission.nrps_cursor
                )
            except sql.CursorDesconocido:
                return None

        cursor = await database.lookup(session, find_cursor, source)
        if cursor is None:
            raise Problem("despues_de_desconocido", f"{folio} no es un aviso de {filtros.rfc_patron}.")

    async def body() -> AsyncGenerator[bytes, None]:
        stream = Stream(recibida_en=received)
        current, engine = permission, source
        audited: Permission | None = permission  # None: refused after the wait, which audits itself
        try:
            if q.espera and await _wait_for_rows(ctx, engine, filtros, cursor, q.espera) != "now":
                # Authorized when it arrived, but a relationship may have been revoked while it waited.
                audited = None
                async with ctx.notifier.turn():
                    # The common page in the lean path's one statement, which authorizes again itself; counted
                    # once already, when the request arrived.
                    woken = (
                        await lean_list(q, ctx.caller, database, settings, ctx.limiter, ndjson=ndjson, count=False)
                        if isinstance(policy, ProductionPolicy) and lean_shape(q)
                        else None
                    )
                    if woken is None:
                        current = audited = await _permit_again(policy, ctx, q)
                if woken is not None:
                    try:
                        if woken.chunks is not None:
                            async for chunk in woken.chunks:
                                yield chunk
                        else:
                            assert woken.body is not None  # a LeanRead is whole or streamed
                            yield woken.body
                            woken.stream.completo = True
                    finally:
                        await lean_done(woken, q, ctx.caller, database)  # its audit row
                    return
                engine = await policy.reads_from(database, current)
            query, start = sql.block_query(current.filtros), sql.after(cursor)
            # aclosing: a body closed half-way settles its connection now, not at GC time.
            async with aclosing(stream_page(engine, query, start, q.limite, stream, ndjson=ndjson)) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            if audited is not None:
                await policy.record(database, ctx.caller, audited, q, stream)

    return Page(body(), quota.headers)


async def _wait_for_rows(
    ctx: Context, engine: AsyncEngine, filtros: sql.Filtros, cursor: sql.Cursor | None, seconds: int
) -> Outcome:
    """The long poll: one watch per employer in this process, one check per distinct page query (scope,
    filters, cursor) however many clients wait on it; no query while nothing is published (app/notify.py).
    NOTIFY comes from the primary, maybe before a replica replays the commit: the watch re-checks shortly
    after a wake-up that found nothing."""

    def check() -> Coroutine[Any, Any, bool]:
        return sql.has_rows(engine, filtros, cursor)

    return await ctx.notifier.watch(filtros.rfc_patron, sql.rows_query(filtros, cursor), check, seconds)


async def _permit_again(policy: Policy, ctx: Context, q: ListQuery) -> Permission:
    """The credential and the authorization as the database has them now, in a session of its own (the
    request's was committed before the wait)."""
    async with ctx.database.sessionmaker() as session:
        await require_still_active(session, ctx.caller)
        try:
            permission = await policy.permit(session, ctx.caller, q, dt.datetime.now(dt.UTC))
        except Problem as problem:
            if problem.keep_writes:
                await session.commit()
            raise
        await session.commit()
    return permission


async def read_one(policy: Policy, folio: str, ctx: Context) -> dict | None:
    """The aviso as a dict of its fields, once the policy lets the caller read it."""
    await ctx.limiter.hit(ctx.settings.rate_limit_avisos, _rate_key(policy, ctx.caller))
    database = ctx.database
    filtros = await policy.permit_one(ctx.session, database, ctx.caller, folio, dt.datetime.now(dt.UTC))
    return await database.lookup(ctx.session, lambda conn: sql.fetch_one(conn, filtros), database.reads)


# ------------------------------------------------------------------ the lean path


@dataclass
class LeanRead:
    """A page the lean path answers, with its rate-limit headers; then `lean_done` audits it. Whole (body), or
    streamed from its first block on (chunks), on a connection of the lean pool that lean_done gives back."""

    body: bytes | None
    chunks: AsyncGenerator[bytes, None] | None
    headers: dict[str, str]
    permission: Permission
    stream: Stream
    release: Callable[[], Awaitable[None]] | None = None


LEAN_LIMITE_MAX = 1000  # the largest page answered whole; larger ones stream, BLOCK_ROWS avisos at a time


def lean_shape(q: ListQuery) -> bool:
    """Whether lean_list can serve the query: filtered at most by employer, NRPs and cursor."""
    filters = (q.clase, q.tipo_aviso, q.nss, q.emitidos_desde, q.emitidos_hasta)
    return all(f is None for f in filters)


def _given_up(error: BaseException) -> bool:
    """The database is unavailable or the pool is exhausted: the route meets the same outage (or waits for its
    own pool) and answers its 503."""
    return isinstance(error, TimeoutError) or (isinstance(error, Exception) and is_unavailable(error))


async def lean_list(
    q: ListQuery,
    caller: Caller,
    database: Database,
    settings: Settings,
    limiter: RateLimiter,
    *,
    ndjson: bool,
    count: bool = True,
) -> LeanRead | None:
    """The common request (a production page of one employer, perhaps some NRPs, after a cursor, no wait) in one
    round trip: sql.lean_page decides the caller's credential, certification, relationship and cursor and reads
    the page, or its first block when it is larger than LEAN_LIMITE_MAX, all in one statement. None when
    anything but that success is the answer (refused, unknown cursor, over the rate limit, the database
    unavailable): the ordinary route then answers the request from scratch, with its problems and its refusal
    audit rows, so this path only ever gives the answer the route would.

    It counts against the same rate limit (unless count is false), and only on success, so a request that falls
    back is counted once, by the route."""
    patron = q.rfc_patron or caller.rfc
    received = dt.datetime.now(dt.UTC)
    pool = database.lean_pool
    if pool is None:  # a read replica is configured (app.main): the route reads the page there
        return None
    streamed = q.limite > LEAN_LIMITE_MAX
    try:
        conn = await pool.acquire(timeout=settings.db_pool_timeout_seconds)
    except Exception as error:
        if _given_up(error):
            return None
        raise
    kept = False  # whether the returned read holds conn
    try:
        try:
            page = await sql.lean_page(
                conn,
                rfc=caller.rfc,
                credencial_id=caller.credencial_id,
                patron=patron,
                nrps=q.nrp,
                despues_de=q.despues_de,
                filas=first_block_rows(q.limite) if streamed else q.limite + 1,
                at=received,
            )
        except BaseException as error:
            # Failed or cancelled half-way: the pool replaces a closed connection instead of reusing it.
            conn.terminate()
            if _given_up(error):
                return None
            raise
        auth = verdict(page.acceso)
        if isinstance(auth, Denegacion) or (q.despues_de is not None and page.cursor_seq is None):
            return None
        try:
            headers = (
                (await limiter.hit(settings.rate_limit_avisos, _rate_key(ProductionPolicy(), caller))).headers
                if count
                else {}  # a long poll woken: counted when it arrived
            )
        except RateLimited:
            return None  # the route refuses it too, and a refused hit counts nothing
        permission = ProductionPolicy.permission(patron, q, auth)
        if streamed:
            stream = Stream(recibida_en=received)
            first = Block(page.cuerpo, page.hasta, page.filas)
            query = sql.block_query(permission.filtros)
            chunks = page_chunks(conn, query, 0, q.limite, stream, ndjson=ndjson, first=first)
            kept = True
            return LeanRead(None, chunks, headers, permission, stream, release=lambda: pool.release(conn))
        lines, hay_mas = page.cuerpo or b"", page.filas > q.limite
        if hay_mas:  # limite + 1 rows were asked for, to learn hay_mas
            lines = lines.rpartition(b"\n")[0]
        stream = Stream(entregados=min(page.filas, q.limite), hay_mas=hay_mas, recibida_en=received)
        return LeanRead(whole_page(lines, hay_mas, ndjson=ndjson), None, headers, permission, stream)
    finally:
        if not kept:
            with anyio.CancelScope(shield=True):
                await pool.release(conn)


async def lean_done(read: LeanRead, q: ListQuery, caller: Caller, database: Database) -> None:
    """Once the page was sent, or not: a streamed page's connection back to its pool, and the read's audit row,
    as the route writes it. Shielded: it runs when a client that left cancelled the response, too."""
    with anyio.CancelScope(shield=True):
        if read.chunks is not None:
            await read.chunks.aclose()  # terminates the connection if the page stopped half-way
        if read.release is not None:
            await read.release()
        await ProductionPolicy().record(database, caller, read.permission, q, read.stream)
