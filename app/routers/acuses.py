"""Acuses: JSON by default, PDF on `Accept: application/pdf` or at {folio}.pdf, and a public verification by folio
and seal."""

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonDict
from sqlalchemy.ext.asyncio import AsyncSession

from app import acuses
from app.acuse_html import CSP as VERIFICATION_CSP
from app.acuse_html import render_verification_html
from app.acuse_pdf import render_acuse_pdf
from app.deps import CALLER_PROBLEMS, CallerDep, SessionDep, SettingsDep
from app.models import Acuse
from app.problems import Problem, problem_responses
from app.settings import Settings

router = APIRouter(prefix="/v1/acuses", tags=["Acuses"])
FolioAcuse = Annotated[
    str,
    Path(
        max_length=24,
        pattern=r"^[A-Z0-9-]+$",
        description="El folio del acuse (`folio_acuse` de la respuesta que lo emitió).",
        examples=["ACU-20261124-3F9A0C21B7"],
    ),
]


DATOS_EJEMPLO: JsonDict = {
    "desarrollador_nombre": "BERENICE XIQUE QUINTERO",
    "desarrollador_rfc": "XIQB891116QE4",
    "nrps": ["Y6067072104", "Y6199977101"],
    "patron_nombre": "Transportes Refrigerados del Norte, S.A. de C.V.",
    "patron_rfc": "TRN920807B50",
    "relacion_id": "5b0f7c1e-8d2a-4c3b-9e51-2f6a7d8c9b10",
    "vigencia_fin": "2027-12-01T06:00:00+00:00",
    "vigencia_inicio": "2026-12-01T06:00:00+00:00",
}
EMITIDO_EJEMPLO = dt.datetime(2026, 11, 24, 16, 2, 11, tzinfo=dt.UTC)
EJEMPLO_ACUSE: JsonDict = {
    "folio": "ACU-20261124-3F9A0C21B7",
    "tipo": "relacion.creacion",
    "emitido_en": EMITIDO_EJEMPLO.isoformat(),
    "partes": ["TRN920807B50", "XIQB891116QE4"],
    "datos": DATOS_EJEMPLO,
    "cadena_original": acuses.cadena_original(
        "ACU-20261124-3F9A0C21B7",
        "relacion.creacion",
        EMITIDO_EJEMPLO,
        ["TRN920807B50", "XIQB891116QE4"],
        DATOS_EJEMPLO,
    ),
    "sello": "eyJhbGciOiJFUzI1NiIsImtpZCI6IjRhTDJ4OXZRIn0.fHwxLjB8QUNVLTIwMjYxMTI0LTNGOUEwQzIxQjd8"
    ".Qm3xW8kZp1vR7tY2uN5cE9aL0sD4fG6hJ3iK8oP2qT5wV7xB1nM4zC9eA0rU6yS3dF5gH8jL2kQ1pO7iW4tE9u",
}


class AcuseRecibo(BaseModel):
    folio: str
    tipo: str = Field(description="contrasena.emision, relacion.creacion, certificacion.aprobacion…")
    emitido_en: dt.datetime
    partes: list[str]
    datos: dict[str, Any]
    cadena_original: str
    sello: str = Field(description="JWS compacto (ES256) cuya carga es la cadena original; verifíquelo con el JWKS.")

    model_config = ConfigDict(json_schema_extra={"examples": [EJEMPLO_ACUSE]})


class Verificacion(BaseModel):
    folio: str
    tipo: str
    emitido_en: dt.datetime
    valido: bool = Field(description="El acuse existe y su sello termina con los caracteres dados.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{**{k: EJEMPLO_ACUSE[k] for k in ("folio", "tipo", "emitido_en")}, "valido": True}]
        }
    )


HTML_EJEMPLO = '<!doctype html>\n<html lang="es-MX">…<h1>Acuse de registro de relación de confianza</h1>…</html>'


def _wants_html(request: Request) -> bool:
    """A browser opening the QR code (it lists text/html first); API clients ask for JSON or send */*."""
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


def _wants_pdf(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/pdf" in accept and "application/json" not in accept


ACUSE_PROBLEMS = problem_responses(*CALLER_PROBLEMS, "acuse_no_encontrado", "solicitud_invalida")
PDF = {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}


async def acuse_of_party(session: AsyncSession, folio: str, rfc: str) -> Acuse:
    """The acuse for one of its parties; anyone else gets the same 404 as for a folio that does not exist."""
    acuse = await acuses.acuse_of_party(session, folio, rfc)
    if acuse is None:
        raise Problem("acuse_no_encontrado", f"No hay un acuse {folio} para {rfc}.")
    return acuse


def pdf_response(
    acuse: Acuse, settings: Settings, disposition: Literal["inline", "attachment"] = "inline", **headers: str
) -> Response:
    url = acuses.verification_url(settings.resolved_public_url, acuse)
    return Response(
        render_acuse_pdf(acuse, url),
        media_type="application/pdf",
        headers={"Content-Disposition": f'{disposition}; filename="{acuse.folio}.pdf"', **headers},
    )


# Before /{folio}, which would take "….pdf" for a folio. Its own operation because generated clients cannot
# choose Accept and parse only the first media type of a response (JSON here).
@router.get(
    "/{folio}.pdf",
    summary="Descargar un acuse en PDF",
    operation_id="descargarAcusePdf",
    response_class=Response,
    response_description="El acuse en PDF, con el QR de su verificación pública.",
    responses={200: {"content": PDF}, **ACUSE_PROBLEMS},
)
async def descargar_acuse_pdf(
    folio: FolioAcuse, caller: CallerDep, session: SessionDep, settings: SettingsDep
) -> Response:
    """Lo mismo que GET /v1/acuses/{folio} con `Accept: application/pdf`, para clientes que no eligen Accept."""
    return pdf_response(await acuse_of_party(session, folio, caller.rfc), settings)


@router.get(
    "/{folio}",
    summary="Consultar un acuse (JSON o PDF)",
    operation_id="consultarAcuse",
    response_model=AcuseRecibo,
    response_description="El acuse con su cadena original y su sello; en PDF con `Accept: application/pdf`.",
    responses={200: {"content": PDF}, **ACUSE_PROBLEMS},
)
async def consultar_acuse(
    folio: FolioAcuse, caller: CallerDep, session: SessionDep, settings: SettingsDep, request: Request
) -> Any:
    """Solo para las partes del acuse; para cualquier otro RFC responde 404, igual que si no existiera."""
    acuse = await acuse_of_party(session, folio, caller.rfc)
    if _wants_pdf(request):
        return pdf_response(acuse, settings)
    return AcuseRecibo.model_validate(acuse, from_attributes=True)


@router.get(
    "/{folio}/verificacion",
    summary="Verificar un acuse",
    operation_id="verificarAcuse",
    response_description="El acuse existe con ese sello: su tipo y fecha, sin datos personales. A un navegador "
    "(`Accept: text/html`), una página con lo que el acuse certifica, para compararla con el impreso.",
    response_model=Verificacion,
    responses={
        200: {"content": {"text/html": {"schema": {"type": "string"}, "example": HTML_EJEMPLO}}},
        **problem_responses("acuse_no_verificable", "solicitud_invalida"),
    },
)
async def verificar_acuse(
    folio: FolioAcuse,
    session: SessionDep,
    request: Request,
    sello: Annotated[
        str,
        Query(
            min_length=16,
            max_length=200,
            pattern=r"^[A-Za-z0-9_.-]+$",  # a JWS is base64url and dots: nothing else can match a seal
            description="Los últimos caracteres del sello (el QR los trae).",
        ),
    ],
) -> Any:
    """Para quien tenga el acuse impreso: no requiere token. En JSON no revela las partes; la página para
    navegadores muestra lo que el acuse impreso ya dice de ellas (RFC, nombres, NRP, vigencia), para cotejarlo
    renglón por renglón, sin datos de trabajadores."""
    acuse = await acuses.acuse_by_folio(session, folio)
    if acuse is None or not acuse.sello.endswith(sello):
        raise Problem("acuse_no_verificable", "No existe un acuse con ese folio y ese sello.")
    if _wants_html(request):
        return HTMLResponse(
            render_verification_html(acuse, sello),
            headers={"Content-Security-Policy": VERIFICATION_CSP, "Cache-Control": "no-store"},
        )
    return Verificacion(folio=acuse.folio, tipo=acuse.tipo, emitido_en=acuse.emitido_en, valido=True)
