"""RFC 9457 problem details: the error shape of every route (the token endpoint alone speaks RFC 6749)."""

from typing import Any

import structlog
from asgi_correlation_id import correlation_id
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = structlog.get_logger(__name__)


class CampoInvalido(BaseModel):
    campo: str = Field(description="Dónde está el error: `query.limite`, `body.rfc`, `path.nombre`…")
    motivo: str


class ProblemDetail(BaseModel):
    """An RFC 9457 problem, with a stable `code` that clients can branch on."""

    type: str = Field(examples=["urn:sia:problema:solicitud_invalida"])
    title: str = Field(examples=["La solicitud no es válida"])
    status: int = Field(examples=[422])
    code: str = Field(examples=["solicitud_invalida"])
    detail: str = Field(examples=["limite: debe ser menor o igual a 10000"])
    instance: str | None = Field(default=None, description="Ruta de la solicitud.")
    request_id: str | None = Field(default=None, description="Identificador de la solicitud para soporte.")
    errores: list[CampoInvalido] | None = None


class Problem(Exception):
    """Raise anywhere below a router; the handler turns it into application/problem+json."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(f"{code}: {detail}")
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.headers = headers or {}
        self.extensions = extensions


def problem_response(request: Request, problem: Problem) -> JSONResponse:
    body = {
        "type": f"urn:sia:problema:{problem.code}",
        "title": problem.title,
        "status": problem.status,
        "code": problem.code,
        "detail": problem.detail,
        "instance": request.url.path,
        "request_id": correlation_id.get(),
        **problem.extensions,
    }
    return JSONResponse(body, status_code=problem.status, headers=problem.headers, media_type=PROBLEM_MEDIA_TYPE)


_HTTP_PROBLEMS = {
    400: ("solicitud_incorrecta", "Solicitud incorrecta"),
    401: ("no_autenticado", "Falta autenticación"),
    403: ("prohibido", "Acceso denegado"),
    404: ("no_encontrado", "Recurso no encontrado"),
    405: ("metodo_no_permitido", "Método no permitido"),
    406: ("no_aceptable", "Formato de respuesta no disponible"),
    413: ("solicitud_demasiado_grande", "Solicitud demasiado grande"),
    415: ("tipo_de_contenido_no_soportado", "Tipo de contenido no soportado"),
}

_HTTP_DETAILS = {
    404: "La ruta {path} no existe. Consulte la documentación en /docs.",
    405: "El método {method} no está permitido en {path}.",
}


def _spanish_reason(error: dict[str, Any]) -> str:
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    reasons = {
        "missing": "es obligatorio",
        "int_parsing": "debe ser un número entero",
        "int_type": "debe ser un número entero",
        "float_parsing": "debe ser un número",
        "decimal_parsing": "debe ser un número decimal",
        "bool_parsing": "debe ser true o false",
        "string_type": "debe ser texto",
        "date_parsing": "debe ser una fecha AAAA-MM-DD",
        "date_from_datetime_parsing": "debe ser una fecha AAAA-MM-DD",
        "date_type": "debe ser una fecha AAAA-MM-DD",
        "datetime_parsing": "debe ser una fecha y hora ISO 8601",
        "datetime_from_date_parsing": "debe ser una fecha y hora ISO 8601",
        "json_invalid": "el cuerpo no es JSON válido",
        "dict_type": "debe ser un objeto JSON",
        "model_attributes_type": "debe ser un objeto JSON",
        "list_type": "debe ser una lista",
        "extra_forbidden": "no es un campo permitido",
        "string_pattern_mismatch": "no tiene el formato esperado",
        "uuid_parsing": "debe ser un UUID",
    }
    if kind in reasons:
        return reasons[kind]
    if kind in ("greater_than_equal", "greater_than"):
        return f"debe ser mayor{' o igual' if kind.endswith('equal') else ''} a {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"debe ser menor{' o igual' if kind.endswith('equal') else ''} a {ctx.get('le', ctx.get('lt'))}"
    if kind == "string_too_short":
        return f"debe tener al menos {ctx.get('min_length')} caracteres"
    if kind == "string_too_long":
        return f"debe tener como máximo {ctx.get('max_length')} caracteres"
    if kind in ("enum", "literal_error"):
        return f"debe ser uno de: {ctx.get('expected')}"
    if kind == "value_error":
        # Our validators raise ValueError with a Spanish reason; pydantic prefixes it.
        return str(ctx.get("error") or error.get("msg", "")).removeprefix("Value error, ")
    return str(error.get("msg", "no es válido"))


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "cuerpo"


def _allowed_methods(request: Request) -> list[str]:
    """Every method any route offers on this path: GET and POST of one path can be separate routes, and
    Starlette's own Allow names only the first route's."""
    path = request.scope["path"]
    routes = (r for r in request.app.routes if getattr(r, "methods", None) and r.path_regex.match(path))
    return sorted({method for route in routes for method in route.methods})


def validation_problem(errors: list[dict[str, Any]]) -> Problem:
    fields = [CampoInvalido(campo=_field_name(tuple(e.get("loc", ()))), motivo=_spanish_reason(e)) for e in errors]
    return Problem(
        422,
        "solicitud_invalida",
        "La solicitud no es válida",
        "; ".join(f"{f.campo}: {f.motivo}" for f in fields),
        errores=[f.model_dump() for f in fields],
    )


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(request, validation_problem(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, title = _HTTP_PROBLEMS.get(exc.status_code, ("error_http", "Error"))
        template = _HTTP_DETAILS.get(exc.status_code)
        detail = template.format(path=request.url.path, method=request.method) if template else str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            code, detail = "cuerpo_ilegible", "El cuerpo no se pudo leer: envíe JSON en UTF-8."
        return problem_response(request, Problem(exc.status_code, code, title, detail, headers=headers))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path)
        request_id = correlation_id.get()
        return problem_response(
            request,
            Problem(
                500,
                "error_interno",
                "Error interno",
                "Ocurrió un error inesperado. Reintente; si persiste, reporte el request_id a soporte.",
                # A 500 is answered outside the request-id middleware, so the header is set here.
                headers={"X-Request-ID": request_id} if request_id else None,
            ),
        )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting problem+json errors of a route."""
    return {
        status: {
            "model": ProblemDetail,
            "content": {PROBLEM_MEDIA_TYPE: {}},
            "description": _describe(status),
        }
        for status in statuses
    }


def _describe(status: int) -> str:
    return {
        400: "Cuerpo ilegible (`cuerpo_ilegible`): no es JSON en UTF-8.",
        401: "Token ausente, inválido o vencido.",
        403: "Sin permiso.",
        404: "No existe (o no es visible para quien llama).",
        409: "Conflicto con el estado actual.",
        422: "Parámetros o cuerpo inválidos (`solicitud_invalida`, con `errores` por campo).",
        429: "Demasiadas solicitudes; respete `Retry-After`.",
        503: "Servicio no disponible.",
    }.get(status, "Error.")
