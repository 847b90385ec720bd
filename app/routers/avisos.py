"""GET /v1/avisos and /v1/avisos/{folio}: authorized before the first byte, streamed, audited."""

import datetime as dt
import time
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Annotated

import anyio
import structlog
from asgi_correlation_id import correlation_id
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from app import avisos
from app.auditoria import record_event
from app.catalogs import codes_of
from app.confianza import Autorizacion, Denegacion, authorize
from app.db import Database, Session
from app.deps import DatabaseDep, NotifierDep, RateLimiterDep, SettingsDep
from app.identifiers import NRP, NSS, RFC, Folio
from app.models.catalogo import CLASES
from app.problems import Problem, problem_responses
from app.security.caller import Caller, CurrentCaller

router = APIRouter(tags=["Avisos"])
log = structlog.get_logger(__name__)
NDJSON = "application/x-ndjson"
Clase = StrEnum("Clase", {c: c for c in CLASES})
RECHECK_SECONDS = 1.0  # a long poll also re-checks, for rows that became visible without a notification


class Aviso(BaseModel):
    folio: str = Field(examples=["20260000000001"])
    tipo_aviso: str = Field(examples=["01"])
    clase: Clase
    rfc_patron: str = Field(examples=["TRN920807B50"])
    nrp: str = Field(examples=["Y6067072104"])
    nss: str = Field(examples=["92919084431"])
    rfc_trabajador: str
    curp: str
    nombre_trabajador: str
    numero_credito: str
    tipo_credito: str
    estatus_credito: str
    tipo_descuento: str = Field(description="1 porcentaje, 2 cuota fija en pesos, 3 factor (VSM/UMI).")
    valor_descuento: str = Field(examples=["20.0000"], description="Decimal exacto como texto, nunca flotante.")
    fecha_emision: dt.date
    fecha_inicio_descuento: dt.date
    publicado_en: dt.datetime


class PaginaAvisos(BaseModel):
    avisos: list[Aviso]
    hay_mas: bool = Field(description="Hay más avisos después de esta página: pida despues_de = el último folio.")


def _denied(denial: Denegacion, rfc_patron: str) -> Problem:
    if denial.motivo == "sin_certificacion":
        return Problem(
            403,
            "sin_certificacion",
            "Sin certificación",
            "Su RFC no tiene una certificación aprobada y vigente; obténgala en /v1/certificaciones.",
        )
    return Problem(
        403,
        "sin_autorizacion",
        "Sin autorización",
        f"No puede leer avisos de {rfc_patron} con esos NRP: "
        "hace falta una relación de confianza vigente que los cubra.",
    )


async def _audit(
    database: Database,
    caller: Caller,
    filtros: avisos.Filtros,
    auth: Autorizacion,
    cantidad: int,
    detalle: dict,
) -> None:
    # Shielded: when the client disconnects the stream is cancelled, and the audit row must still be written.
    with anyio.CancelScope(shield=True):
        async with database.sessionmaker() as session:
            await session.execute(text("SET LOCAL synchronous_commit = off"))
            await record_event(
                session,
                accion="avisos.consulta",
                actor=caller.rfc,
                rfc_patron=filtros.rfc_patron,
                nrps=filtros.nrps,
                cantidad=cantidad,
                relacion_id=auth.relaciones[0] if auth.relaciones else None,
                request_id=correlation_id.get(),
                detalle={"filtros": filtros.as_dict(), "relaciones": [str(r) for r in auth.relaciones], **detalle},
                now=dt.datetime.now(dt.UTC),
            )
            await session.commit()


@router.get(
    "/v1/avisos",
    summary="Descargar avisos",
    operation_id="listarAvisos",
    response_model=PaginaAvisos,
    response_description=(
        "Avisos en orden de publicación. `application/json`: `{avisos, hay_mas}`. "
        "`Accept: application/x-ndjson`: un aviso por línea (la última página trae menos de `limite`)."
    ),
    responses={
        200: {"content": {NDJSON: {"schema": {"$ref": "#/components/schemas/Aviso"}}}},
        **problem_responses(401, 403, 422, 429),
    },
)
async def listar_avisos(
    request: Request,
    caller: CurrentCaller,
    session: Session,
    settings: SettingsDep,
    database: DatabaseDep,
    notifier: NotifierDep,
    limiter: RateLimiterDep,
    rfc_patron: Annotated[RFC | None, Query(description="El patrón; un patrón puede omitirlo (los suyos).")] = None,
    nrp: Annotated[list[NRP] | None, Query(description="Uno o más NRP (repita el parámetro).", max_length=500)] = None,
    clase: Clase | None = None,
    tipo_aviso: Annotated[
        str | None, Query(pattern=r"^[0-9A-Z]{2}$", description="Código del catálogo tipos-aviso.")
    ] = None,
    nss: Annotated[NSS | None, Query(description="Solo los avisos de este trabajador.")] = None,
    emitidos_desde: Annotated[dt.date | None, Query(description="fecha_emision desde (inclusive).")] = None,
    emitidos_hasta: Annotated[dt.date | None, Query(description="fecha_emision hasta (inclusive).")] = None,
    despues_de: Annotated[
        Folio | None, Query(description="El último folio que ya tiene: continúa después de él.")
    ] = None,
    limite: Annotated[
        int, Query(ge=1, description="Avisos por página (máximo configurable, 10 000 por omisión).")
    ] = 1000,
    espera: Annotated[
        int, Query(ge=0, le=60, description="Segundos a esperar avisos nuevos si no hay ninguno después del cursor.")
    ] = 0,
) -> StreamingResponse:
    """Una descarga completa y una sincronización incremental son la misma solicitud con otro cursor.
    Un aviso publicado mientras usted pagina le llega exactamente una vez. Con `espera`, la solicitud se
    mantiene abierta hasta que se publiquen avisos del patrón o se acabe el tiempo (entonces, página vacía)."""
    quota = limiter.hit(settings.rate_limit_avisos, f"avisos:{caller.rfc}")
    if limite > settings.avisos_limite_max:
        raise Problem(
            422,
            "limite_fuera_de_rango",
            "Límite fuera de rango",
            f"limite debe estar entre 1 y {settings.avisos_limite_max}.",
        )
    if emitidos_desde and emitidos_hasta and emitidos_desde > emitidos_hasta:
        raise Problem(422, "rango_invalido", "Rango inválido", "emitidos_desde es posterior a emitidos_hasta.")
    if tipo_aviso is not None and tipo_aviso not in await codes_of(session, "tipos-aviso"):
        raise Problem(
            422,
            "tipo_aviso_desconocido",
            "Tipo de aviso desconocido",
            f"{tipo_aviso} no está en /v1/catalogos/tipos-aviso.",
        )
    patron = rfc_patron or caller.rfc
    requested = sorted(set(nrp)) if nrp else None
    auth = await authorize(session, caller.rfc, patron, requested, dt.datetime.now(dt.UTC))
    if isinstance(auth, Denegacion):
        raise _denied(auth, patron)
    filtros = avisos.Filtros(
        patron, auth.nrps, clase.value if clase else None, tipo_aviso, nss, emitidos_desde, emitidos_hasta
    )
    cursor = None
    if despues_de is not None:
        try:
            cursor = await avisos.find_cursor(await session.connection(), patron, despues_de)
        except avisos.CursorDesconocido:
            raise Problem(
                422, "despues_de_desconocido", "Folio desconocido", f"{despues_de} no es un aviso de {patron}."
            ) from None
    query = avisos.page_query(filtros, cursor, limite + 1)
    ndjson = NDJSON in request.headers.get("accept", "") or "application/jsonl" in request.headers.get("accept", "")

    async def body() -> AsyncIterator[bytes]:
        stream = avisos.Stream()
        started = time.monotonic()
        try:
            if espera and not await avisos.has_rows(database.engine, query):
                deadline = started + espera
                while (remaining := deadline - time.monotonic()) > 0:
                    await notifier.wait(patron, min(remaining, RECHECK_SECONDS))
                    if await avisos.has_rows(database.engine, query):
                        break
            async for chunk in avisos.stream_page(database.engine, query, limite, stream, ndjson=ndjson):
                yield chunk
        finally:
            detalle = {
                "limite": limite,
                "despues_de": despues_de,
                "formato": "ndjson" if ndjson else "json",
                "completo": stream.completo,
            }
            await _audit(database, caller, filtros, auth, stream.entregados, detalle)

    return StreamingResponse(body(), media_type=NDJSON if ndjson else "application/json", headers=quota.headers)


@router.get(
    "/v1/avisos/{folio}",
    summary="Consultar un aviso",
    operation_id="consultarAviso",
    response_description="El aviso, si quien llama puede leer los avisos de su patrón y NRP.",
    responses=problem_responses(401, 403, 404, 422, 429),
)
async def consultar_aviso(
    folio: Annotated[Folio, Path()],
    caller: CurrentCaller,
    session: Session,
    settings: SettingsDep,
    database: DatabaseDep,
    limiter: RateLimiterDep,
) -> Aviso:
    """Para quien no puede leerlo, 404: lo mismo que si no existiera."""
    limiter.hit(settings.rate_limit_avisos, f"avisos:{caller.rfc}")
    conn = await session.connection()
    located = await avisos.locate(conn, folio)
    auth = await authorize(session, caller.rfc, located[0], [located[1]], dt.datetime.now(dt.UTC)) if located else None
    if isinstance(auth, Denegacion) and auth.motivo == "sin_certificacion":
        raise _denied(auth, located[0])
    if not isinstance(auth, Autorizacion):
        raise Problem(
            404, "aviso_no_encontrado", "Aviso no encontrado", f"No hay un aviso {folio} que usted pueda leer."
        )
    filtros = avisos.Filtros(located[0], [located[1]], folio=folio)
    aviso = await avisos.fetch_one(conn, filtros)
    await _audit(database, caller, filtros, auth, 1, {"folio": folio})
    return Aviso.model_validate(aviso)
