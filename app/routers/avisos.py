"""GET /v1/avisos and /v1/avisos/{folio}, and the same routes under /sandbox: HTTP in and out of
app.avisos.reading, which holds the policy (who reads what, audit, long poll, stream). Wire models here."""

import datetime as dt
from collections.abc import AsyncGenerator, AsyncIterator
from enum import StrEnum
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonDict
from starlette.responses import Content
from starlette.types import Send

from app.avisos import reading
from app.avisos.reading import ListQuery, Policy, ProductionPolicy, SandboxPolicy
from app.deps import CALLER_PROBLEMS, CallerDep, DatabaseDep, NotifierDep, RateLimiterDep, SessionDep, SettingsDep
from app.identifiers import NRP, NSS, RFC, Fecha, Folio
from app.models.catalogo import CLASES
from app.openapi import RATE_LIMIT_HEADERS
from app.problems import Problem, ProblemCode, problem_response, problem_responses

router = APIRouter(tags=["Avisos"])
sandbox_router = APIRouter(tags=["Sandbox"])
NDJSON = "application/x-ndjson"
# Built from the domain's tuple so the API cannot drift from it; mypy cannot list the members of such an enum.
Clase = StrEnum("Clase", {c: c for c in CLASES})  # type: ignore[misc]


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


async def list_query(
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
) -> ListQuery:
    return ListQuery(
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


ListQueryDep = Annotated[ListQuery, Depends(list_query)]
FolioAviso = Annotated[Folio, Path(description="El folio del aviso.")]


# ------------------------------------------------------------------ HTTP in and out of the reading flow


async def context(
    caller: CallerDep,
    session: SessionDep,
    settings: SettingsDep,
    database: DatabaseDep,
    notifier: NotifierDep,
    limiter: RateLimiterDep,
) -> reading.Context:
    return reading.Context(caller, session, settings, database, notifier, limiter)


ContextDep = Annotated[reading.Context, Depends(context)]


async def _list(
    policy: Policy, q: ListQuery, request: Request, ctx: reading.Context, ndjson: bool | None = None
) -> Response:
    """ndjson: the representation fixed by the route; None: chosen by the Accept header."""
    if ndjson is None:
        accept = request.headers.get("accept", "")
        ndjson = NDJSON in accept or "application/jsonl" in accept
    page = await reading.list_page(policy, q, ctx, ndjson=ndjson)
    return StatusWithFirstChunk(
        page.body, request, media_type=NDJSON if ndjson else "application/json", headers=page.headers
    )


class StatusWithFirstChunk(StreamingResponse):
    """Sends the status line with the first chunk, not before: what the body does first (a long poll's wait,
    the authorization after it, drawing a connection and the first rows) may still answer with a problem
    instead of a 200. A database failure then reaches the app's database error mapping (a 503 with
    Retry-After) before any byte was sent, instead of cutting a 200.

    The body is closed when the response ends for any reason, a client that left included, so that its
    connection and its audit row are settled then, not whenever the garbage collector gets to them."""

    def __init__(self, content: AsyncGenerator[bytes, None], request: Request, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.request = request
        self.chunks = content

    async def stream_response(self, send: Send) -> None:
        chunks = self.chunks
        try:
            try:
                first = await anext(chunks)
            except StopAsyncIteration:
                first = None
            except Problem as problem:
                refusal = problem_response(self.request, problem)
                start = {"type": "http.response.start", "status": refusal.status_code, "headers": refusal.raw_headers}
                await send(start)
                await send({"type": "http.response.body", "body": refusal.body, "more_body": False})
                return

            async def again() -> AsyncIterator[Content]:
                if first is not None:
                    yield first
                async for chunk in chunks:
                    yield chunk

            self.body_iterator = again()
            await super().stream_response(send)
        finally:
            with anyio.CancelScope(shield=True):
                await chunks.aclose()


async def _one(policy: Policy, folio: str, ctx: reading.Context) -> "Aviso":
    return Aviso.model_validate(await reading.read_one(policy, folio, ctx))


# The page's final line, as app.avisos.stream.ndjson_end writes it.
NDJSON_END = (
    'y al final una línea que no es un aviso: `{"fin":true,"hay_mas":false}`. Dice que la página llegó entera '
    "y, como `hay_mas` en JSON, si hay más después (pida `despues_de` = el último folio). Una página sin esa "
    "línea se cortó: siga después de su último aviso completo."
)
LIST_DOC: dict[str, Any] = {
    "response_model": PaginaAvisos,
    "response_description": (
        "Avisos en orden de publicación. `application/json`: `{avisos, hay_mas}`. "
        "`Accept: application/x-ndjson`, o la misma ruta terminada en `.ndjson`: un aviso por línea, " + NDJSON_END
    ),
}
# One aviso per line: the same object as in application/json, without the page around it. The schema and the
# example are those of an aviso's line (OpenAPI 3.1 has no item schema for sequential media types; 3.2 will);
# the final line is described in words, so generators still read one aviso per line.
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
    "response_description": "Avisos en orden de publicación, uno por línea, " + NDJSON_END,
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
async def listar_avisos(c: ListQueryDep, request: Request, ctx: ContextDep) -> Response:
    return await _list(ProductionPolicy(), c, request, ctx)


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
async def listar_avisos_ndjson(c: ListQueryDep, request: Request, ctx: ContextDep) -> Response:
    return await _list(ProductionPolicy(), c, request, ctx, ndjson=True)


@sandbox_router.get(
    "/sandbox/v1/avisos",
    summary="Descargar avisos del sandbox",
    operation_id="listarAvisosSandbox",
    description="La misma API que /v1/avisos, sobre los datos sintéticos de su intento de certificación abierto.",
    **LIST_DOC,
    responses={**NDJSON_PAGE, **SANDBOX_LIST_PROBLEMS},
)
async def listar_avisos_sandbox(c: ListQueryDep, request: Request, ctx: ContextDep) -> Response:
    return await _list(SandboxPolicy(), c, request, ctx)


@sandbox_router.get(
    "/sandbox/v1/avisos.ndjson",
    summary="Descargar avisos del sandbox en NDJSON",
    operation_id="listarAvisosSandboxNdjson",
    description="Lo mismo que GET /sandbox/v1/avisos con `Accept: application/x-ndjson`.",
    **NDJSON_ONLY,
    responses={**NDJSON_PAGE, **SANDBOX_LIST_PROBLEMS},
)
async def listar_avisos_sandbox_ndjson(c: ListQueryDep, request: Request, ctx: ContextDep) -> Response:
    return await _list(SandboxPolicy(), c, request, ctx, ndjson=True)


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
async def consultar_aviso(folio: FolioAviso, ctx: ContextDep) -> Aviso:
    """Para quien no puede leerlo, 404: lo mismo que si no existiera."""
    return await _one(ProductionPolicy(), folio, ctx)


@sandbox_router.get(
    "/sandbox/v1/avisos/{folio}",
    summary="Consultar un aviso del sandbox",
    operation_id="consultarAvisoSandbox",
    response_description="El aviso, si quien llama puede leerlo.",
    responses=problem_responses(*ONE_PROBLEMS, "sin_intento_en_curso"),
)
async def consultar_aviso_sandbox(folio: FolioAviso, ctx: ContextDep) -> Aviso:
    """Como GET /v1/avisos/{folio}, sobre los avisos del intento de certificación en curso."""
    return await _one(SandboxPolicy(), folio, ctx)
