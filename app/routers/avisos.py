"""GET /v1/avisos and /v1/avisos/{folio}, and the same routes under /sandbox: HTTP in and out of
app.avisos.reading, which holds the policy (who reads what, audit, long poll, stream). Wire models here."""

import datetime as dt
import re
from collections.abc import AsyncGenerator, AsyncIterator
from enum import StrEnum
from typing import Annotated, Any, cast
from urllib.parse import parse_qsl

import anyio
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.json_schema import JsonDict
from starlette.datastructures import Headers
from starlette.responses import Content
from starlette.types import ASGIApp, Receive, Scope, Send

from app.avisos import reading
from app.avisos.reading import ListQuery, Policy, ProductionPolicy, SandboxPolicy
from app.deps import (
    CALLER_PROBLEMS,
    CallerDep,
    DatabaseDep,
    NotifierDep,
    RateLimiterDep,
    SessionDep,
    SettingsDep,
    State,
    verified_claims,
)
from app.identifiers import NRP, NSS, RFC, Fecha, Folio
from app.models.catalogo import CLASES
from app.openapi import RATE_LIMIT_HEADERS
from app.problems import Problem, ProblemCode, problem_response, problem_responses
from app.security.tokens import Caller, InvalidToken
from app.settings import Settings

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


LIMITE_POR_OMISION = 1000  # a page's avisos when the request names no limite


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
    ] = LIMITE_POR_OMISION,
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
        ndjson = wants_ndjson(request.headers.get("accept", ""))
    page = await reading.list_page(policy, q, ctx, ndjson=ndjson)
    return StatusWithFirstChunk(
        page.body, request, media_type=NDJSON if ndjson else "application/json", headers=page.headers
    )


def wants_ndjson(accept: str) -> bool:
    return NDJSON in accept or "application/jsonl" in accept


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


# ------------------------------------------------------------------ the lean path of the common page


LEAN_PATHS = {"/v1/avisos": False, "/v1/avisos.ndjson": True}  # path -> NDJSON whatever Accept says
_LEAN_LIMITE = re.compile(r"[1-9][0-9]{0,8}")  # then compared with the settings' maximum
_RFC, _FOLIO, _NRP = TypeAdapter(RFC), TypeAdapter(Folio), TypeAdapter(NRP)


def _valid(adapter: TypeAdapter[str], value: str) -> bool:
    try:
        return adapter.validate_python(value) == value
    except ValidationError:
        return False


def lean_query(query_string: bytes, settings: Settings) -> ListQuery | None:
    """The query when it has the common shape the lean path serves (rfc_patron, nrp, despues_de and limite,
    each well formed, a page reading.lean_shape accepts); None for anything else, which the route handles."""
    single: dict[str, str] = {}
    nrps: list[str] = []
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name == "nrp":
            nrps.append(value)
        elif name in ("rfc_patron", "despues_de", "limite") and name not in single:
            single[name] = value
        else:
            return None  # another parameter, or one given twice (the route takes the last one)
    limite = single.get("limite", str(LIMITE_POR_OMISION))
    if not _LEAN_LIMITE.fullmatch(limite) or int(limite) > settings.avisos_limite_max:
        return None
    rfc_patron, despues_de = single.get("rfc_patron"), single.get("despues_de")
    if rfc_patron is not None and not _valid(_RFC, rfc_patron):
        return None
    if despues_de is not None and not _valid(_FOLIO, despues_de):
        return None
    if len(nrps) > 500 or not all(_valid(_NRP, n) for n in nrps):
        return None
    q = ListQuery(rfc_patron, sorted(set(nrps)) or None, None, None, None, None, None, despues_de, int(limite), 0)
    return q if reading.lean_shape(q) else None


class LeanListing:
    """GET /v1/avisos (and .ndjson) in its common shape, answered before FastAPI's routing and dependencies:
    a cached token verification, one statement (app.avisos.reading.lean_list) and the page sent whole, or, when
    it is larger than reading.LEAN_LIMITE_MAX, streamed in blocks from the first one that statement read. Anything
    else, or any answer but that page (a refusal, an unknown cursor, the rate limit, the database unavailable),
    goes on to the ordinary route, which answers it from scratch. Innermost of the middleware: the request id,
    the security headers and the body limit apply as to every response. tests/test_lean_path.py compares its
    answers with the route's for every shape."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"] in LEAN_PATHS
            and await self._answer(scope, receive, send)
        ):
            await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> bool:
        state = cast(State, scope["state"])
        settings = state["settings"]
        q = lean_query(scope["query_string"], settings)
        if q is None:
            return False
        headers = Headers(scope=scope)
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        try:
            claims = verified_claims(state["keys"], settings, token)
        except InvalidToken:
            return False
        caller = Caller(claims.sub, claims.credencial_id, claims.jti)
        ndjson = LEAN_PATHS[scope["path"]] or wants_ndjson(headers.get("accept", ""))
        database = state["database"]
        read = await reading.lean_list(q, caller, database, settings, state["rate_limiter"], ndjson=ndjson)
        if read is None:
            return False
        media_type = NDJSON if ndjson else "application/json"
        try:
            if read.chunks is not None:  # a page larger than reading.LEAN_LIMITE_MAX, streamed as the route does
                request = Request(scope, receive)
                await StatusWithFirstChunk(read.chunks, request, media_type=media_type, headers=read.headers)(
                    scope, receive, send
                )
            else:
                assert read.body is not None  # a LeanRead is whole or streamed
                raw_headers = [
                    (b"content-type", media_type.encode()),
                    (b"content-length", str(len(read.body)).encode()),
                    *((k.lower().encode(), v.encode()) for k, v in read.headers.items()),
                ]
                await send({"type": "http.response.start", "status": 200, "headers": raw_headers})
                await send({"type": "http.response.body", "body": read.body, "more_body": False})
                read.stream.completo = True
        finally:
            await reading.lean_done(read, q, caller, database)
        return True
