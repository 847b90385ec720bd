"""RFC 9457 problem details: the error shape of every route (the token endpoint alone speaks RFC 6749)."""

from typing import Any, Literal, NamedTuple

import structlog
from asgi_correlation_id import correlation_id
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.security.efirma import EfirmaCode
from app.security.rate_limit import RateLimited

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = structlog.get_logger(__name__)


class CampoInvalido(BaseModel):
    campo: str = Field(description="Dónde está el error: `query.limite`, `body.rfc`, `path.nombre`…")
    motivo: str


# Its docstring is the schema's description in the contract, so it speaks to the payroll developer, in Spanish.
class ProblemDetail(BaseModel):
    """Un problema RFC 9457, con un `code` estable sobre el que el cliente puede decidir."""

    type: str = Field(examples=["urn:sia:problema:solicitud_invalida"])
    title: str = Field(examples=["La solicitud no es válida"])
    status: int = Field(examples=[422])
    code: str = Field(examples=["solicitud_invalida"])
    detail: str = Field(examples=["limite: debe ser menor o igual a 10000"])
    instance: str | None = Field(default=None, description="Ruta de la solicitud.")
    request_id: str | None = Field(default=None, description="Identificador de la solicitud para soporte.")
    errores: list[CampoInvalido] | None = None


# Every code as a type, so a misspelled code is a mypy error instead of a KeyError (a 500) at raise time.
# Spelled twice, here and in PROBLEMAS: tests/test_problems.py fails when the two sets differ.
ProblemCode = Literal[
    EfirmaCode,  # the e.firma verifier's own codes, listed in app.security.efirma
    "solicitud_incorrecta",
    "cuerpo_ilegible",
    "no_autenticado",
    "token_invalido",
    "credencial_no_vigente",
    "sesion_requerida",
    "credenciales_incorrectas",
    "origen_no_permitido",
    "prohibido",
    "no_es_patron",
    "solo_el_patron",
    "sin_certificacion",
    "sin_autorizacion",
    "sin_intento_en_curso",
    "no_encontrado",
    "reto_desconocido",
    "acuse_no_encontrado",
    "acuse_no_verificable",
    "aviso_no_encontrado",
    "relacion_no_encontrada",
    "certificacion_no_encontrada",
    "metodo_no_permitido",
    "no_aceptable",
    "reto_usado",
    "contrasena_activa",
    "sin_contrasena_activa",
    "relacion_duplicada",
    "intento_cerrado",
    "escenario_previo_pendiente",
    "escenario_iniciado",
    "reto_vencido",
    "solicitud_demasiado_grande",
    "tipo_de_contenido_no_soportado",
    "solicitud_invalida",
    "desarrollador_sin_contrasena",
    "desarrollador_no_certificado",
    "nrp_ajeno",
    "vigencia_en_el_pasado",
    "vigencia_invalida",
    "rango_invalido",
    "cursor_invalido",
    "tipo_aviso_desconocido",
    "limite_fuera_de_rango",
    "despues_de_desconocido",
    "rfc_patron_requerido",
    "escenario_sin_inicio",
    "rfc_bloqueado",
    "limite_de_tasa",
    "error_interno",
    "verificaciones_ocupadas",
    "correo_no_enviado",
    "base_de_datos_no_disponible",
    "migraciones_pendientes",
]


class Problema(NamedTuple):
    status: int
    title: str
    cuando: str


# Every error code the API answers with: its status, its title (the same for every occurrence, RFC 9457 §3.1.3)
# and when it happens. Routes document theirs with problem_responses(*codes), so the spec lists them.
PROBLEMAS: dict[ProblemCode, Problema] = {
    "solicitud_incorrecta": Problema(400, "Solicitud incorrecta", "La solicitud HTTP no se pudo interpretar."),
    "cuerpo_ilegible": Problema(400, "Cuerpo ilegible", "El cuerpo no es JSON en UTF-8."),
    "no_autenticado": Problema(401, "No autenticado", "Falta el encabezado `Authorization: Bearer <token>`."),
    "token_invalido": Problema(401, "No autenticado", "El token está mal formado, su firma no es válida o venció."),
    "credencial_no_vigente": Problema(
        401, "No autenticado", "La contraseña con la que se emitió el token fue renovada o cancelada."
    ),
    "prohibido": Problema(403, "Acceso denegado", "Sin permiso."),
    "sesion_requerida": Problema(
        401, "Sesión requerida", "No hay sesión del portal, venció (15 min sin uso u 8 h) o su contraseña cambió."
    ),
    "credenciales_incorrectas": Problema(401, "No autenticado", "RFC, contraseña o código OTP incorrectos."),
    "origen_no_permitido": Problema(
        403, "Origen no permitido", "Un cambio desde el portal llegó sin `Origin` o desde otro sitio."
    ),
    "no_es_patron": Problema(403, "Solo patrones", "Quien llama no está en el padrón de patrones."),
    "solo_el_patron": Problema(403, "Solo el patrón", "Solo el patrón que otorgó la relación puede revocarla."),
    "sin_certificacion": Problema(
        403, "Sin certificación", "El desarrollador no tiene una certificación aprobada y vigente."
    ),
    "sin_autorizacion": Problema(
        403,
        "Sin autorización",
        "Ninguna relación de confianza vigente cubre ese patrón y esos NRP (en el sandbox: no es el patrón del "
        "intento).",
    ),
    "sin_intento_en_curso": Problema(
        403, "Sin intento de certificación", "El sandbox requiere un intento de certificación en curso."
    ),
    "no_encontrado": Problema(404, "Recurso no encontrado", "La ruta no existe."),
    "reto_desconocido": Problema(404, "Reto desconocido", "No existe ese `reto_id`."),
    "acuse_no_encontrado": Problema(404, "Acuse no encontrado", "No existe, o quien llama no es parte del acuse."),
    "acuse_no_verificable": Problema(404, "Acuse no verificable", "No existe un acuse con ese folio y ese sello."),
    "aviso_no_encontrado": Problema(404, "Aviso no encontrado", "No existe, o quien llama no puede leerlo."),
    "relacion_no_encontrada": Problema(
        404, "Relación no encontrada", "No existe, o quien llama no es parte de la relación."
    ),
    "certificacion_no_encontrada": Problema(
        404, "Certificación no encontrada", "No existe un intento de certificación de quien llama con ese id."
    ),
    "metodo_no_permitido": Problema(405, "Método no permitido", "La ruta no acepta ese método; vea `Allow`."),
    "no_aceptable": Problema(406, "Formato de respuesta no disponible", "No hay un formato que satisfaga `Accept`."),
    "reto_usado": Problema(409, "Reto ya usado", "Cada reto sirve una sola vez."),
    "contrasena_activa": Problema(409, "Ya tiene contraseña", "El RFC ya tiene una contraseña activa: renuévela."),
    "sin_contrasena_activa": Problema(409, "Sin contraseña activa", "El RFC no tiene una contraseña activa."),
    "relacion_duplicada": Problema(
        409, "Relación duplicada", "Ya hay una relación con ese desarrollador que se traslapa en NRP y fechas."
    ),
    "intento_cerrado": Problema(409, "Intento cerrado", "El intento ya fue aprobado, cancelado o venció."),
    "escenario_previo_pendiente": Problema(
        409, "Falta un escenario", "Ese escenario requiere aprobar antes `descarga_completa`."
    ),
    "escenario_iniciado": Problema(409, "Escenario ya iniciado", "El escenario ya se inició en este intento."),
    "reto_vencido": Problema(410, "Reto vencido", "El reto pasó su vigencia; pida otro."),
    "solicitud_demasiado_grande": Problema(413, "Solicitud demasiado grande", "El cuerpo excede el tamaño permitido."),
    "tipo_de_contenido_no_soportado": Problema(
        415, "Tipo de contenido no soportado", "El `Content-Type` no es el que espera la ruta."
    ),
    "solicitud_invalida": Problema(
        422, "La solicitud no es válida", "Parámetros o cuerpo inválidos; `errores` dice qué campo y por qué."
    ),
    "certificado_ilegible": Problema(
        422, "e.firma no aceptada", "El certificado no es un .cer en base64 legible, o su llave no es RSA."
    ),
    "certificado_no_es_efirma": Problema(
        422, "e.firma no aceptada", "Es un certificado de sello digital (CSD) u otro que no es una e.firma."
    ),
    "certificado_vencido": Problema(422, "e.firma no aceptada", "La e.firma venció."),
    "certificado_aun_no_vigente": Problema(422, "e.firma no aceptada", "La e.firma aún no entra en vigor."),
    "cadena_no_confiable": Problema(
        422, "e.firma no aceptada", "La e.firma no fue emitida por una autoridad certificadora del SAT."
    ),
    "rfc_no_coincide": Problema(422, "e.firma no aceptada", "El certificado es de otro RFC que el del reto."),
    "certificado_revocado": Problema(
        422, "e.firma no aceptada", "La e.firma fue revocada (lista de revocación del SAT o su servicio OCSP)."
    ),
    "firma_invalida": Problema(
        422, "e.firma no aceptada", "La firma no es base64 o no corresponde al reto con la llave del certificado."
    ),
    # Raised where the person signs (`sia efirma firmar`), not by a route: registered so EfirmaError has one set.
    "llave_ilegible": Problema(
        422, "e.firma no aceptada", "La llave privada (.key) no se pudo abrir con esa contraseña, o no es RSA."
    ),
    "desarrollador_sin_contrasena": Problema(
        422, "Desarrollador sin contraseña", "El desarrollador no tiene una contraseña activa del servicio."
    ),
    "desarrollador_no_certificado": Problema(
        422, "Desarrollador no certificado", "El desarrollador no tiene una certificación aprobada y vigente."
    ),
    "nrp_ajeno": Problema(422, "NRP ajeno", "Algún NRP no es del patrón que llama; `nrps` dice cuáles."),
    "vigencia_en_el_pasado": Problema(422, "Vigencia inválida", "`vigencia_inicio` está en el pasado."),
    "vigencia_invalida": Problema(422, "Vigencia inválida", "`vigencia_fin` no es posterior a `vigencia_inicio`."),
    "rango_invalido": Problema(422, "Rango inválido", "El inicio del rango de fechas es posterior a su fin."),
    "cursor_invalido": Problema(422, "Cursor inválido", "`despues_de` no es un elemento de esta lista."),
    "tipo_aviso_desconocido": Problema(
        422, "Tipo de aviso desconocido", "`tipo_aviso` no está en el catálogo tipos-aviso."
    ),
    "limite_fuera_de_rango": Problema(422, "Límite fuera de rango", "`limite` excede el máximo de la ruta."),
    "despues_de_desconocido": Problema(422, "Folio desconocido", "`despues_de` no es un aviso de ese patrón."),
    "rfc_patron_requerido": Problema(
        422, "Falta rfc_patron", "Quien no es patrón debe indicar `rfc_patron`; un patrón puede omitirlo (los suyos)."
    ),
    "escenario_sin_inicio": Problema(422, "Escenario sin inicio", "Ese escenario no se inicia: solo se descarga."),
    "rfc_bloqueado": Problema(
        429, "Demasiados intentos", "Demasiados códigos OTP fallidos: el RFC queda bloqueado un rato."
    ),
    "limite_de_tasa": Problema(
        429, "Demasiadas solicitudes", "Se superó el límite de solicitudes; reintente después de `Retry-After`."
    ),
    "error_interno": Problema(500, "Error interno", "Error inesperado; reporte el `request_id` a soporte."),
    "verificaciones_ocupadas": Problema(
        503, "Servicio ocupado", "Hay demasiadas verificaciones de contraseña en curso; reintente según `Retry-After`."
    ),
    "correo_no_enviado": Problema(503, "Correo no enviado", "El correo con la contraseña no se pudo enviar."),
    "revocacion_no_verificable": Problema(
        503, "Revocación no verificable", "El servicio OCSP del SAT no respondió o no reconoce el certificado."
    ),
    "base_de_datos_no_disponible": Problema(503, "Servicio no disponible", "La base de datos no responde."),
    "migraciones_pendientes": Problema(
        503, "Servicio no disponible", "La base de datos no tiene las migraciones al día."
    ),
}


class Problem(Exception):
    """Raise anywhere below a router; the handler turns it into application/problem+json. The code decides the
    status and the title (PROBLEMAS); the detail says what happened this time.

    Raising rolls back what the request wrote; keep_writes=True commits it before the problem is answered (a
    failure counter, the audit row of a refusal): the commit contract of app.deps.committed."""

    def __init__(
        self,
        code: ProblemCode,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        keep_writes: bool = False,
        **extensions: Any,
    ) -> None:
        super().__init__(f"{code}: {detail}")
        self.status, self.title = PROBLEMAS[code].status, PROBLEMAS[code].title
        self.code, self.detail = code, detail
        self.headers = headers or {}
        self.keep_writes = keep_writes
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


# Starlette's own HTTP errors (unknown route, wrong method, unreadable body) in our codes.
_HTTP_CODES: dict[int, ProblemCode] = {
    400: "solicitud_incorrecta",
    401: "no_autenticado",
    403: "prohibido",
    404: "no_encontrado",
    405: "metodo_no_permitido",
    406: "no_aceptable",
    413: "solicitud_demasiado_grande",
    415: "tipo_de_contenido_no_soportado",
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
    """Every method some route answers on this path. GET and POST of one path can be separate routes, and
    Starlette's own Allow names only the first; asking each route whether it matches keeps this independent of
    how FastAPI nests included routers."""
    return [
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in request.app.router.routes
        )
    ]


def validation_problem(errors: list[dict[str, Any]]) -> Problem:
    fields = [CampoInvalido(campo=_field_name(tuple(e.get("loc", ()))), motivo=_spanish_reason(e)) for e in errors]
    return Problem(
        "solicitud_invalida",
        "; ".join(f"{f.campo}: {f.motivo}" for f in fields),
        errores=[f.model_dump() for f in fields],
    )


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc)

    @app.exception_handler(RateLimited)
    async def _rate_limited(request: Request, exc: RateLimited) -> JSONResponse:
        return problem_response(request, Problem("limite_de_tasa", str(exc), headers=exc.headers))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(request, validation_problem(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error_interno" if exc.status_code >= 500 else "solicitud_incorrecta")
        template = _HTTP_DETAILS.get(exc.status_code)
        detail = template.format(path=request.url.path, method=request.method) if template else str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            code, detail = "cuerpo_ilegible", "El cuerpo no se pudo leer: envíe JSON en UTF-8."
        return problem_response(request, Problem(code, detail, headers=headers))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path)
        request_id = correlation_id.get()
        return problem_response(
            request,
            Problem(
                "error_interno",
                "Ocurrió un error inesperado. Reintente; si persiste, reporte el request_id a soporte.",
                # A 500 is answered outside every middleware (request id, security headers), so they are set here.
                headers={
                    **({"X-Request-ID": request_id} if request_id else {}),
                    "X-Content-Type-Options": "nosniff",
                    "Cache-Control": "no-store",
                },
            ),
        )


def problem_responses(*codes: ProblemCode) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the error codes a route can answer with: per status, the codes listed in
    the description and as an enum of `code`, each with an example body."""
    by_status: dict[int, list[ProblemCode]] = {}
    for code in codes:
        by_status.setdefault(PROBLEMAS[code].status, []).append(code)
    return {status: _documented(status, status_codes) for status, status_codes in sorted(by_status.items())}


_HEADERS = {
    401: {"WWW-Authenticate": {"description": "`Bearer` (RFC 6750).", "schema": {"type": "string"}}},
    429: {
        "Retry-After": {"description": "Segundos que debe esperar antes de reintentar.", "schema": {"type": "integer"}}
    },
}


def _documented(status: int, codes: list[ProblemCode]) -> dict[str, Any]:
    schema = {
        "allOf": [{"$ref": "#/components/schemas/ProblemDetail"}],
        "properties": {"code": {"enum": codes}},
    }
    examples = {
        code: {"summary": code, "description": PROBLEMAS[code].cuando, "value": problem_example(code)} for code in codes
    }
    return {
        # `model` registers ProblemDetail in the components; app.openapi keeps only the problem+json content.
        "model": ProblemDetail,
        "description": "\n".join(f"- `{code}`: {PROBLEMAS[code].cuando}" for code in codes),
        "content": {PROBLEM_MEDIA_TYPE: {"schema": schema, "examples": examples}},
        **({"headers": _HEADERS[status]} if status in _HEADERS else {}),
    }


def problem_example(code: ProblemCode) -> dict[str, Any]:
    problema = PROBLEMAS[code]
    return {
        "type": f"urn:sia:problema:{code}",
        "title": problema.title,
        "status": problema.status,
        "code": code,
        "detail": problema.cuando,
        "request_id": "8f0e6c2d4b6a4e1f9c3d2b1a0f9e8d7c",
    }
