"""GET /v1/avisos and /v1/avisos/{folio}, and the same routes under /sandbox: one body of route code, two
data scopes (Alcance). Authorized before the first byte, streamed, audited."""

import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Protocol

import anyio
from asgi_correlation_id import correlation_id
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonDict
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from starlette.responses import Content
from starlette.types import Send

from app import avisos, certificaciones
from app.auditoria import record_event
from app.catalogs import CATALOGOS, catalog_entries
from app.confianza import Denegacion, authorize, is_certified, is_patron
from app.db import Database, Session
from app.deps import DatabaseDep, NotifierDep, RateLimiterDep, SettingsDep
from app.identifiers import NRP, NSS, RFC, Fecha, Folio
from app.models.catalogo import CLASES
from app.notify import Notifier
from app.openapi import RATE_LIMIT_HEADERS
from app.problems import Problem, ProblemCode, problem_response, problem_responses
from app.security.caller import CALLER_PROBLEMS, Caller, CurrentCaller, require_still_active
from app.security.rate_limit import RateLimiter
from app.settings import Settings

router = APIRouter(tags=["Avisos"])
sandbox_router = APIRouter(tags=["Sandbox"])
NDJSON = "application/x-ndjson"
# Built from the domain's tuple so the API cannot drift from it; mypy cannot list the members of such an enum.
Clase = StrEnum("Clase", {c: c for c in CLASES})  # type: ignore[misc]
RECHECK_SECONDS = 1.0  # a long poll also re-checks, for rows that became visible without a notification


EJEMPLO_AVISO: JsonDict = {
    "folio": "20262600000003",
    "tipo_aviso": "10",
    "clase": "suspension",
    "rfc_patron": "TRN920807B50",
    "nrp": "Y6199977101",
    "nss": "11018123734",
    "rfc_trabajador": "EAMO810909AD3",
    "curp": "EAMO810909HQRSRS09",
    "nombre_trabajador": "ESTRADA MIRANDA OSCAR",
    "numero_credito": "2886089889",
    "tipo_credito": "01",
    "estatus_credito": "VIG",
    "tipo_descuento": "3",
    "valor_descuento": "11.8030",
    "fecha_emision": "2026-08-05",
    "fecha_inicio_descuento": "2026-08-06",
    "publicado_en": "2026-11-24T13:05:12.482113Z",
}


class Aviso(BaseModel):
    folio: str
    tipo_aviso: str
    clase: Clase
    rfc_patron: str
    nrp: str
    nss: str
    rfc_trabajador: str
    curp: str
    nombre_trabajador: str
    numero_credito: str
    tipo_credito: str
    estatus_credito: str
    tipo_descuento: str = Field(description="1 porcentaje, 2 cuota fija en pesos, 3 factor (VSM/UMI).")
    valor_descuento: str = Field(description="Decimal exacto como texto, nunca flotante.")
    fecha_emision: dt.date
    fecha_inicio_descuento: dt.date
    publicado_en: dt.datetime

    model_config = ConfigDict(json_schema_extra={"examples": [EJEMPLO_AVISO]})


class PaginaAvisos(BaseModel):
    avisos: list[Aviso]
    hay_mas: bool = Field(description="Hay más avisos después de esta página: pida despues_de = el último folio.")

    model_config = ConfigDict(json_schema_extra={"examples": [{"avisos": [EJEMPLO_AVISO], "hay_mas": True}]})


@dataclass(frozen=True)
class Consulta:
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


async def consulta(
    rfc_patron: Annotated[RFC | None, Query(description="El patrón; un patrón puede omitirlo (los suyos).")] = None,
    nrp: Annotated[list[NRP] | None, Query(description="Uno o más NRP (repita el parámetro).", max_length=500)] = None,
    clase: Annotated[Clase | None, Query(description="Solo avisos de retención, modificación o suspensión.")] = None,
    tipo_aviso: Annotated[str | None, Query(pattern=r"^[0-9A-Z]{2}$", description="Código de tipos-aviso.")] = None,
    nss: Annotated[NSS | None, Query(description="Solo los avisos de este trabajador.")] = None,
    emitidos_desde: Annotated[Fecha | None, Query(description="fecha_emision desde (inclusive).")] = None,
    emitidos_hasta: Annotated[Fecha | None, Query(description="fecha_emision hasta (inclusive).")] = None,
    despues_de: Annotated[Folio | None, Query(description="El último folio que ya tiene; sigue después.")] = None,
    limite: Annotated[
        int, Query(ge=1, description="Avisos por página (10 000 como máximo; 500 en el sandbox).")
    ] = 1000,
    espera: Annotated[
        int, Query(ge=0, le=60, description="Segundos a esperar avisos nuevos si no hay ninguno después del cursor.")
    ] = 0,
) -> Consulta:
    return Consulta(
        rfc_patron,
        sorted(set(nrp)) if nrp else None,
        clase.value if clase else None,
        tipo_aviso,
        nss,
        emitidos_desde,
        emitidos_hasta,
        despues_de,
        limite,
        espera,
    )


ConsultaDep = Annotated[Consulta, Depends(consulta)]
FolioAviso = Annotated[Folio, Path(description="El folio del aviso.")]


# ------------------------------------------------------------------ scopes


@dataclass(frozen=True)
class Permiso:
    filtros: avisos.Filtros
    relaciones: list[uuid.UUID]
    certificacion_id: uuid.UUID | None = None
    # The NRPs a despues_de folio may belong to (None = any of the employer): what the caller may read, not
    # only what this request filters, so that a cursor of another readable NRP still works.
    nrps_cursor: list[str] | None = None
    lote: int = 0  # sandbox: the attempt's last published lot, which a replica must hold before serving it


class Alcance(Protocol):
    nombre: str  # rate limits count each scope apart: certifying must not spend production quota

    def acotar(self, c: Consulta, settings: Settings) -> Consulta: ...

    async def permitir(
        self, session: AsyncSession, caller: Caller, c: Consulta, now: dt.datetime
    ) -> Permiso | Problem: ...

    async def registrar(
        self, database: Database, caller: Caller, permiso: Permiso, c: Consulta, stream: avisos.Stream
    ) -> None: ...

    async def lecturas(self, database: Database, permiso: Permiso) -> AsyncEngine:
        """Where the pages of this read come from: the replica (DATABASE_READ_URL) or the primary."""
        ...

    async def permitir_folio(
        self, session: AsyncSession, database: Database, caller: Caller, folio: str, now: dt.datetime
    ) -> avisos.Filtros:
        """The filters that select that one aviso, once it may be read (production audits the read)."""
        ...


def _denied(denial: Denegacion, rfc_patron: str) -> Problem:
    if denial.motivo == "sin_certificacion":
        return Problem(
            "sin_certificacion",
            "Su RFC no tiene una certificación aprobada y vigente; obténgala en /v1/certificaciones.",
        )
    return Problem(
        "sin_autorizacion",
        f"No puede leer avisos de {rfc_patron} con esos NRP: "
        "hace falta una relación de confianza vigente que los cubra.",
    )


class Produccion:
    """Production: the trust relationships decide, through the one authorization function."""

    nombre = "produccion"

    def acotar(self, c: Consulta, settings: Settings) -> Consulta:
        if c.limite > settings.avisos_limite_max:
            maximum = settings.avisos_limite_max
            raise Problem("limite_fuera_de_rango", f"limite debe estar entre 1 y {maximum}.")
        return c

    async def permitir(self, session: AsyncSession, caller: Caller, c: Consulta, now: dt.datetime) -> Permiso | Problem:
        if c.rfc_patron is None and not await is_patron(session, caller.rfc):
            # Otherwise the caller's own RFC would be taken as the employer and refused as if it had asked for it.
            raise Problem(
                "rfc_patron_requerido",
                "Indique de qué patrón quiere los avisos con rfc_patron: solo un patrón puede omitirlo "
                "para leer los suyos.",
            )
        patron = c.rfc_patron or caller.rfc
        auth = await authorize(session, caller.rfc, patron, c.nrp, now)
        if isinstance(auth, Denegacion):
            await _record_refusal(session, caller, patron, c.nrp, auth, {"consulta": c.as_dict()})
            return _denied(auth, patron)  # returned, so that the refusal's audit row is committed
        filtros = avisos.Filtros(patron, auth.nrps, c.clase, c.tipo_aviso, c.nss, c.emitidos_desde, c.emitidos_hasta)
        return Permiso(filtros, auth.relaciones, nrps_cursor=auth.legibles)

    async def registrar(
        self, database: Database, caller: Caller, permiso: Permiso, c: Consulta, stream: avisos.Stream
    ) -> None:
        detalle = {"limite": c.limite, "despues_de": c.despues_de, "completo": stream.completo}
        await _audit(database, caller, permiso, stream.entregados, detalle)

    async def lecturas(self, database: Database, permiso: Permiso) -> AsyncEngine:
        # A lagging replica serves a prefix of the publication order: later avisos arrive on a later call.
        return database.reads

    async def permitir_folio(
        self, session: AsyncSession, database: Database, caller: Caller, folio: str, now: dt.datetime
    ) -> avisos.Filtros:
        certified = await is_certified(session, caller.rfc, now)
        located = await database.lookup(session, lambda conn: avisos.locate(conn, folio), database.reads)
        if not certified:
            # Whether or not the folio exists: an uncertified caller cannot tell existing folios from missing ones.
            denial = Denegacion("sin_certificacion")
            if located is not None:
                await _audit_refusal(database, caller, located[0], [located[1]], denial, {"folio": folio})
            raise _denied(denial, "")
        if located is None:
            raise _aviso_no_encontrado(folio)
        auth = await authorize(session, caller.rfc, located[0], [located[1]], now)
        if isinstance(auth, Denegacion):
            await _audit_refusal(database, caller, located[0], [located[1]], auth, {"folio": folio})
            # Not certified is about the caller; anything else looks like an aviso that does not exist.
            raise _denied(auth, located[0]) if auth.motivo == "sin_certificacion" else _aviso_no_encontrado(folio)
        filtros = avisos.Filtros(located[0], [located[1]], folio=folio)
        await _audit(database, caller, Permiso(filtros, auth.relaciones), 1, {"folio": folio})
        return filtros


class Sandbox:
    """The caller's open certification attempt: its own synthetic employer, no trust relationship needed."""

    nombre = "sandbox"

    def acotar(self, c: Consulta, settings: Settings) -> Consulta:
        # Above production's maximum it refuses, as production does (the document states one maximum for
        # both); below it, it caps: a client asking for more gets 500 and hay_mas, so it must page.
        c = Produccion().acotar(c, settings)
        return dataclasses.replace(c, limite=min(c.limite, settings.sandbox_limite_max))

    async def permitir(self, session: AsyncSession, caller: Caller, c: Consulta, now: dt.datetime) -> Permiso | Problem:
        cert = await certificaciones.current_attempt(session, caller.rfc, now)
        if cert is None:
            raise Problem(
                "sin_intento_en_curso",
                "Abra un intento en POST /v1/certificaciones.",
            )
        # Set whenever an attempt is opened; only certifications granted without one lack them, and none is open.
        assert cert.sandbox_rfc is not None and cert.sandbox_nrps is not None
        if (c.rfc_patron and c.rfc_patron != cert.sandbox_rfc) or (c.nrp and not set(c.nrp) <= set(cert.sandbox_nrps)):
            raise Problem(
                "sin_autorizacion",
                f"El sandbox de su intento es el patrón {cert.sandbox_rfc} con los NRP {', '.join(cert.sandbox_nrps)}.",
            )
        retry = await certificaciones.trip_rate_limit(session, cert, now)
        if retry is not None:
            await certificaciones.log_request(
                session, cert.id, at=now, status=429, params=c.as_dict(), despues_de=c.despues_de, entregados=0
            )
            return Problem(
                "limite_de_tasa",
                f"Escenario limite_de_tasa: espere {retry} s antes de la siguiente solicitud.",
                headers={"Retry-After": str(retry)},
            )
        filtros = avisos.Filtros(
            cert.sandbox_rfc,
            c.nrp,
            c.clase,
            c.tipo_aviso,
            c.nss,
            c.emitidos_desde,
            c.emitidos_hasta,
            scope=avisos.sandbox_scope(cert.id),
        )
        return Permiso(filtros, [], cert.id, lote=certificaciones.ultimo_lote(cert))

    async def registrar(
        self, database: Database, caller: Caller, permiso: Permiso, c: Consulta, stream: avisos.Stream
    ) -> None:
        # Sandbox.permitir names the attempt, and _listar stamps the stream when the request arrives.
        assert permiso.certificacion_id is not None and stream.recibida_en is not None
        with anyio.CancelScope(shield=True):
            async with database.sessionmaker() as session:
                await certificaciones.log_request(
                    session,
                    permiso.certificacion_id,
                    at=stream.recibida_en,
                    status=200,
                    params=c.as_dict(),
                    despues_de=c.despues_de,
                    entregados=stream.entregados,
                )
                await session.commit()

    async def lecturas(self, database: Database, permiso: Permiso) -> AsyncEngine:
        # The service judges the attempt's evidence against its own rows: a replica that has not replayed the
        # attempt's last lot yet would serve a short download, and a correct client would fail the scenario.
        assert permiso.certificacion_id is not None  # Sandbox.permitir names the attempt
        replica = database.read_engine
        if replica is not None and await certificaciones.sandbox_replicado(
            replica, permiso.certificacion_id, permiso.lote
        ):
            return replica
        return database.engine

    async def permitir_folio(
        self, session: AsyncSession, database: Database, caller: Caller, folio: str, now: dt.datetime
    ) -> avisos.Filtros:
        cert = await certificaciones.current_attempt(session, caller.rfc, now)
        scope = avisos.sandbox_scope(cert.id) if cert else None
        located = (
            await database.lookup(session, lambda conn: avisos.locate(conn, folio, scope), database.reads)
            if scope
            else None
        )
        if located is None or scope is None:
            raise _aviso_no_encontrado(folio)
        # Not logged: the scenarios judge list requests, and a single read is not a download.
        return avisos.Filtros(located[0], [located[1]], folio=folio, scope=scope)


async def _audit(database: Database, caller: Caller, permiso: Permiso, cantidad: int, detalle: dict) -> None:
    # Shielded: when the client disconnects the stream is cancelled, and the audit row must still be written.
    with anyio.CancelScope(shield=True):
        async with database.sessionmaker() as session:
            # A read's audit row may trail a crash by a moment; it must not cost every request a WAL flush.
            await session.execute(text("SET LOCAL synchronous_commit = off"))
            await record_event(
                session,
                accion="avisos.consulta",
                actor=caller.rfc,
                rfc_patron=permiso.filtros.rfc_patron,
                nrps=permiso.filtros.nrps,
                cantidad=cantidad,
                relacion_id=permiso.relaciones[0] if permiso.relaciones else None,
                request_id=correlation_id.get(),
                detalle={
                    "filtros": permiso.filtros.as_dict(),
                    "relaciones": [str(r) for r in permiso.relaciones],
                    **detalle,
                },
                now=dt.datetime.now(dt.UTC),
            )
            await session.commit()


REFUSED = "avisos.consulta_rechazada"


async def _record_refusal(
    session: AsyncSession, caller: Caller, rfc_patron: str, nrps: list[str] | None, denial: Denegacion, detalle: dict
) -> None:
    """A refused read, for the employer's audit view: who tried to read its avisos and why it was refused."""
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


async def _audit_refusal(
    database: Database, caller: Caller, rfc_patron: str, nrps: list[str] | None, denial: Denegacion, detalle: dict
) -> None:
    # In a session of its own: the request's is rolled back with the problem raised after this.
    with anyio.CancelScope(shield=True):
        async with database.sessionmaker() as session:
            # Like a read's row, it need not cost a WAL flush (nor let the caller time one).
            await session.execute(text("SET LOCAL synchronous_commit = off"))
            await _record_refusal(session, caller, rfc_patron, nrps, denial, detalle)
            await session.commit()


# ------------------------------------------------------------------ the route code, shared


@dataclass(frozen=True)
class Contexto:
    """What the shared route bodies use besides the query: one dependency instead of the same list on four routes."""

    request: Request
    caller: Caller
    session: AsyncSession
    settings: Settings
    database: Database
    notifier: Notifier
    limiter: RateLimiter


async def contexto(
    request: Request,
    caller: CurrentCaller,
    session: Session,
    settings: SettingsDep,
    database: DatabaseDep,
    notifier: NotifierDep,
    limiter: RateLimiterDep,
) -> Contexto:
    return Contexto(request, caller, session, settings, database, notifier, limiter)


ContextoDep = Annotated[Contexto, Depends(contexto)]


async def _listar(alcance: Alcance, c: Consulta, ctx: Contexto, ndjson: bool | None = None) -> Response:
    """ndjson: the representation fixed by the route; None: chosen by the Accept header."""
    request, caller, session, settings, database = ctx.request, ctx.caller, ctx.session, ctx.settings, ctx.database
    quota = await ctx.limiter.hit(settings.rate_limit_avisos, f"avisos:{alcance.nombre}:{caller.rfc}")
    c = alcance.acotar(c, settings)
    if c.emitidos_desde and c.emitidos_hasta and c.emitidos_desde > c.emitidos_hasta:
        raise Problem("rango_invalido", "emitidos_desde es posterior a emitidos_hasta.")
    if c.tipo_aviso is not None:
        tipos = await catalog_entries(session, CATALOGOS["tipos-aviso"])
        if c.tipo_aviso not in {tipo["codigo"] for tipo in tipos}:
            raise Problem("tipo_aviso_desconocido", f"{c.tipo_aviso} no está en el catálogo tipos-aviso.")
    received = dt.datetime.now(dt.UTC)
    permiso = await alcance.permitir(session, caller, c, received)
    if isinstance(permiso, Problem):
        return problem_response(request, permiso)  # returned, so what permitir wrote is committed
    filtros = permiso.filtros
    engine = await alcance.lecturas(database, permiso)
    cursor = None
    if c.despues_de is not None:
        folio = c.despues_de

        async def find_cursor(conn: AsyncConnection) -> avisos.Cursor | None:
            try:
                return await avisos.find_cursor(
                    conn, filtros.rfc_patron, folio, filtros.scope, nrps=permiso.nrps_cursor
                )
            except avisos.CursorDesconocido:
                return None

        cursor = await database.lookup(session, find_cursor, engine)
        if cursor is None:
            raise Problem("despues_de_desconocido", f"{folio} no es un aviso de {filtros.rfc_patron}.")
    query = avisos.page_query(filtros, cursor, c.limite + 1)
    if ndjson is None:
        accept = request.headers.get("accept", "")
        ndjson = NDJSON in accept or "application/jsonl" in accept

    async def body() -> AsyncIterator[bytes]:
        stream = avisos.Stream(recibida_en=received)
        current: Permiso | None
        current, page, source = permiso, query, engine
        try:
            if c.espera and not await avisos.has_rows(source, page):
                deadline = time.monotonic() + c.espera
                while (remaining := deadline - time.monotonic()) > 0:
                    # NOTIFY comes from the primary, maybe before a replica replays the commit: RECHECK_SECONDS
                    # bounds what that lag adds.
                    await ctx.notifier.wait(filtros.rfc_patron, min(remaining, RECHECK_SECONDS))
                    if await avisos.has_rows(source, page):
                        break
                # Authorized when it arrived, but a relationship may have been revoked while it waited.
                try:
                    current = await _authorize_again(alcance, ctx, c)
                except Problem:
                    current = None
                    raise
                page = avisos.page_query(current.filtros, cursor, c.limite + 1)
                source = await alcance.lecturas(database, current)
            async for chunk in avisos.stream_page(source, page, c.limite, stream, ndjson=ndjson):
                yield chunk
        finally:
            if current is not None:
                await alcance.registrar(database, caller, current, c, stream)

    return StatusWithFirstChunk(
        body(), request, media_type=NDJSON if ndjson else "application/json", headers=quota.headers
    )


async def _authorize_again(alcance: Alcance, ctx: Contexto, c: Consulta) -> Permiso:
    """The credential and the authorization as the database has them now, in a session of its own (the
    request's was committed before the wait)."""
    async with ctx.database.sessionmaker() as session:
        await require_still_active(session, ctx.caller)
        permiso = await alcance.permitir(session, ctx.caller, c, dt.datetime.now(dt.UTC))
        await session.commit()
    if isinstance(permiso, Problem):
        raise permiso
    return permiso


class StatusWithFirstChunk(StreamingResponse):
    """Sends the status line with the first chunk, not before: what the body does first (a long poll's wait and
    the authorization after it) may still answer with a problem instead of a 200."""

    def __init__(self, content: AsyncIterator[bytes], request: Request, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.request = request

    async def stream_response(self, send: Send) -> None:
        chunks = aiter(self.body_iterator)
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            first = None
        except Problem as problem:
            refusal = problem_response(self.request, problem)
            await send({"type": "http.response.start", "status": refusal.status_code, "headers": refusal.raw_headers})
            await send({"type": "http.response.body", "body": refusal.body, "more_body": False})
            return

        async def again() -> AsyncIterator[Content]:
            if first is not None:
                yield first
            async for chunk in chunks:
                yield chunk

        self.body_iterator = again()
        await super().stream_response(send)


async def _uno(alcance: Alcance, folio: str, ctx: Contexto) -> Aviso:
    await ctx.limiter.hit(ctx.settings.rate_limit_avisos, f"avisos:{alcance.nombre}:{ctx.caller.rfc}")
    database = ctx.database
    filtros = await alcance.permitir_folio(ctx.session, database, ctx.caller, folio, dt.datetime.now(dt.UTC))
    return Aviso.model_validate(
        await database.lookup(ctx.session, lambda conn: avisos.fetch_one(conn, filtros), database.reads)
    )


def _aviso_no_encontrado(folio: str) -> Problem:
    return Problem("aviso_no_encontrado", f"No hay un aviso {folio} que usted pueda leer.")


LIST_DOC: dict[str, Any] = {
    "response_model": PaginaAvisos,
    "response_description": (
        "Avisos en orden de publicación. `application/json`: `{avisos, hay_mas}`. "
        "`Accept: application/x-ndjson`, o la misma ruta terminada en `.ndjson`: un aviso por línea "
        "(la última página trae menos de `limite`)."
    ),
}
# One aviso per line: the same object as in application/json, without the page around it. The schema and the
# example are those of one line (OpenAPI 3.1 has no item schema for sequential media types; 3.2 will).
NDJSON_MEDIA = {
    NDJSON: {
        "schema": {"$ref": "#/components/schemas/Aviso"},
        "example": EJEMPLO_AVISO,
    }
}
NDJSON_PAGE: dict[int | str, dict[str, Any]] = {200: {"headers": RATE_LIMIT_HEADERS, "content": NDJSON_MEDIA}}
NDJSON_ONLY: dict[str, Any] = {
    # Its media_type is None: FastAPI then adds no media type of its own beside NDJSON_MEDIA.
    "response_class": StreamingResponse,
    "response_description": "Avisos en orden de publicación, uno por línea (la última página trae menos de `limite`).",
}
LIST_PROBLEMS: tuple[ProblemCode, ...] = (
    *CALLER_PROBLEMS,
    "solicitud_invalida",
    "rango_invalido",
    "tipo_aviso_desconocido",
    "despues_de_desconocido",
    "limite_de_tasa",
)
PRODUCTION_LIST_PROBLEMS = problem_responses(
    *LIST_PROBLEMS, "sin_certificacion", "sin_autorizacion", "limite_fuera_de_rango", "rfc_patron_requerido"
)
SANDBOX_LIST_PROBLEMS = problem_responses(
    *LIST_PROBLEMS, "sin_intento_en_curso", "sin_autorizacion", "limite_fuera_de_rango"
)
LIST_DESCRIPTION = """Una descarga completa y una sincronización incremental son la misma solicitud con otro cursor.
Un aviso publicado mientras usted pagina le llega exactamente una vez. Con `espera`, la solicitud se
mantiene abierta hasta que se publiquen avisos del patrón o se acabe el tiempo (entonces, página vacía)."""


@router.get(
    "/v1/avisos",
    summary="Descargar avisos",
    operation_id="listarAvisos",
    description=LIST_DESCRIPTION,
    **LIST_DOC,
    responses={**NDJSON_PAGE, **PRODUCTION_LIST_PROBLEMS},
)
async def listar_avisos(c: ConsultaDep, ctx: ContextoDep) -> Response:
    return await _listar(Produccion(), c, ctx)


# Generated clients cannot choose Accept and read only the first media type of a response, so the NDJSON
# representation is an operation of its own: a query parameter on /v1/avisos would make their parser fail.
@router.get(
    "/v1/avisos.ndjson",
    summary="Descargar avisos en NDJSON",
    operation_id="listarAvisosNdjson",
    description="Lo mismo que GET /v1/avisos con `Accept: application/x-ndjson`, para clientes que no eligen Accept.",
    **NDJSON_ONLY,
    responses={**NDJSON_PAGE, **PRODUCTION_LIST_PROBLEMS},
)
async def listar_avisos_ndjson(c: ConsultaDep, ctx: ContextoDep) -> Response:
    return await _listar(Produccion(), c, ctx, ndjson=True)


@sandbox_router.get(
    "/sandbox/v1/avisos",
    summary="Descargar avisos del sandbox",
    operation_id="listarAvisosSandbox",
    description="La misma API que /v1/avisos, sobre los datos sintéticos de su intento de certificación abierto.",
    **LIST_DOC,
    responses={**NDJSON_PAGE, **SANDBOX_LIST_PROBLEMS},
)
async def listar_avisos_sandbox(c: ConsultaDep, ctx: ContextoDep) -> Response:
    return await _listar(Sandbox(), c, ctx)


@sandbox_router.get(
    "/sandbox/v1/avisos.ndjson",
    summary="Descargar avisos del sandbox en NDJSON",
    operation_id="listarAvisosSandboxNdjson",
    description="Lo mismo que GET /sandbox/v1/avisos con `Accept: application/x-ndjson`.",
    **NDJSON_ONLY,
    responses={**NDJSON_PAGE, **SANDBOX_LIST_PROBLEMS},
)
async def listar_avisos_sandbox_ndjson(c: ConsultaDep, ctx: ContextoDep) -> Response:
    return await _listar(Sandbox(), c, ctx, ndjson=True)


ONE_PROBLEMS: tuple[ProblemCode, ...] = (
    *CALLER_PROBLEMS,
    "aviso_no_encontrado",
    "solicitud_invalida",
    "limite_de_tasa",
)


@router.get(
    "/v1/avisos/{folio}",
    summary="Consultar un aviso",
    operation_id="consultarAviso",
    response_description="El aviso, si quien llama puede leerlo.",
    responses=problem_responses(*ONE_PROBLEMS, "sin_certificacion"),
)
async def consultar_aviso(folio: FolioAviso, ctx: ContextoDep) -> Aviso:
    """Para quien no puede leerlo, 404: lo mismo que si no existiera."""
    return await _uno(Produccion(), folio, ctx)


@sandbox_router.get(
    "/sandbox/v1/avisos/{folio}",
    summary="Consultar un aviso del sandbox",
    operation_id="consultarAvisoSandbox",
    response_description="El aviso, si quien llama puede leerlo.",
    responses=problem_responses(*ONE_PROBLEMS, "sin_intento_en_curso"),
)
async def consultar_aviso_sandbox(folio: FolioAviso, ctx: ContextoDep) -> Aviso:
    """Como GET /v1/avisos/{folio}, sobre los avisos del intento de certificación en curso."""
    return await _uno(Sandbox(), folio, ctx)
