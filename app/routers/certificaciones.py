"""Certification attempts, their scenarios and evidence."""

import datetime as dt
import uuid
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonDict
from sqlalchemy.ext.asyncio import AsyncSession

from app import certificaciones
from app.deps import CALLER_PROBLEMS, CallerDep, KeysDep, RateLimiterDep, SessionDep, SettingsDep, utc_now
from app.models import Certificacion
from app.problems import problem_responses
from app.security.rate_limit import RateLimiter
from app.settings import Settings

router = APIRouter(prefix="/v1/certificaciones", tags=["Certificar software"])
# Built from the domain's tuple so the API cannot drift from it; mypy cannot list the members of such an enum.
NombreEscenario = StrEnum("NombreEscenario", {e: e for e in certificaciones.ESCENARIOS})  # type: ignore[misc]


class Escenario(BaseModel):
    nombre: str
    descripcion: str
    estado: str = Field(description="pendiente, aprobado o reprobado.")
    motivo: str | None = Field(default=None, description="Por qué no se aprobó, en palabras accionables.")
    parametros: dict[str, Any] | None = None


class SandboxPublic(BaseModel):
    rfc_patron: str
    nrps: list[str]
    url: str


def _escenario_ejemplo(nombre: str, estado: str, **extra: Any) -> dict[str, Any]:
    return {"nombre": nombre, "descripcion": certificaciones.DESCRIPCIONES[nombre], "estado": estado, **extra}


EJEMPLO_INTENTO: JsonDict = {
    "id": "9d3c1a7e-5f20-4b8c-a6e1-0c2b4d6f8a13",
    "estado": "en_curso",
    "creada_en": "2026-11-24T16:20:03.881274Z",
    "expira_en": "2026-12-08T16:20:03.881274Z",
    "aprobada_en": None,
    "vigente_hasta": None,
    "sandbox": {"rfc_patron": "CMS910808AD4", "nrps": ["Y5469980102", "Y5437443109"], "url": "/sandbox/v1/avisos"},
    "escenarios": [
        _escenario_ejemplo("descarga_completa", "aprobado"),
        _escenario_ejemplo(
            "descarga_filtrada",
            "reprobado",
            motivo="no pidió los filtros clase, emitidos_desde y emitidos_hasta del escenario",
            parametros={"clase": "modificacion", "emitidos_desde": "2026-03-01", "emitidos_hasta": "2026-06-30"},
        ),
        _escenario_ejemplo("sincronizacion_incremental", "pendiente"),
        _escenario_ejemplo("limite_de_tasa", "pendiente"),
    ],
    "evidencia": certificaciones.EVIDENCE,
    "folio_acuse": None,
}


class Intento(BaseModel):
    id: uuid.UUID
    estado: str = Field(description="en_curso, aprobada, cancelada o vencida.")
    creada_en: dt.datetime
    expira_en: dt.datetime | None
    aprobada_en: dt.datetime | None
    vigente_hasta: dt.datetime | None
    sandbox: SandboxPublic | None
    escenarios: list[Escenario]
    evidencia: str = Field(default=certificaciones.EVIDENCE)
    folio_acuse: str | None

    model_config = ConfigDict(json_schema_extra={"examples": [EJEMPLO_INTENTO]})

    @classmethod
    def of(cls, cert: Certificacion, now: dt.datetime) -> "Intento":
        escenarios = [
            Escenario(
                nombre=name,
                descripcion=certificaciones.DESCRIPCIONES[name],
                estado=cert.escenarios.get(name, {}).get("estado", "pendiente"),
                motivo=cert.escenarios.get(name, {}).get("motivo"),
                parametros=cert.escenarios.get(name, {}).get("parametros"),
            )
            for name in certificaciones.ESCENARIOS
        ]
        sandbox = (
            SandboxPublic(rfc_patron=cert.sandbox_rfc, nrps=cert.sandbox_nrps, url="/sandbox/v1/avisos")
            if cert.sandbox_rfc and cert.sandbox_nrps is not None
            else None
        )
        return cls(
            id=cert.id,
            estado=certificaciones.estado_de(cert, now),
            creada_en=cert.creada_en,
            expira_en=cert.expira_en,
            aprobada_en=cert.aprobada_en,
            vigente_hasta=cert.vigente_hasta,
            sandbox=sandbox,
            escenarios=escenarios,
            folio_acuse=cert.folio_acuse,
        )


class Evidencia(BaseModel):
    escenario: NombreEscenario
    total: int = Field(ge=0, le=10_000_000)
    huella: str = Field(
        pattern=r"^[0-9a-fA-F]{64}$", description="SHA-256 hex de los folios ordenados unidos con '\\n'."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "escenario": "descarga_completa",
                    "total": 4217,
                    "huella": "3f5a0c9e1b7d2468ace13579bdf02468ace13579bdf02468ace13579bdf0246a",
                }
            ]
        }
    )


class VeredictoPublic(BaseModel):
    escenario: str
    aprobado: bool
    motivo: str
    certificacion: Intento

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "escenario": "limite_de_tasa",
                    "aprobado": False,
                    "motivo": "reintentó a los 0.4 s; Retry-After pedía 2 s",
                    "certificacion": EJEMPLO_INTENTO,
                }
            ]
        }
    )


async def open_within_quota(session: AsyncSession, settings: Settings, limiter: RateLimiter, rfc: str) -> Intento:
    """Each attempt builds thousands of avisos: one hourly quota per RFC, whether opened by the API or the portal."""
    await limiter.hit(settings.rate_limit_certificaciones, f"certificaciones:{rfc}")
    now = utc_now()
    return Intento.of(await certificaciones.open_intento(session, rfc, settings, now), now)


CertId = Annotated[uuid.UUID, Path(description="El id del intento.")]


@router.post(
    "",
    status_code=201,
    summary="Abrir un intento de certificación",
    operation_id="abrirCertificacion",
    response_description="El intento, con su patrón de pruebas y sus escenarios.",
    responses=problem_responses(*CALLER_PROBLEMS, "limite_de_tasa"),
)
async def abrir(caller: CallerDep, session: SessionDep, settings: SettingsDep, limiter: RateLimiterDep) -> Intento:
    """Crea un patrón de pruebas propio con entre 2 000 y 8 000 avisos sintéticos al azar (2 a 4 NRP, todas las
    clases, fechas del último año) en /sandbox/v1/avisos. Puede abrir un intento nuevo cuando quiera, dentro de
    un límite por hora (429 `limite_de_tasa` con Retry-After)."""
    return await open_within_quota(session, settings, limiter, caller.rfc)


@router.get(
    "",
    summary="Listar mis intentos",
    operation_id="listarCertificaciones",
    response_description="Del más reciente al más antiguo.",
    responses=problem_responses(*CALLER_PROBLEMS),
)
async def listar(caller: CallerDep, session: SessionDep) -> list[Intento]:
    """Todos los intentos de quien llama, con su estado: el aprobado y vigente es el que permite leer avisos."""
    now = utc_now()
    return [Intento.of(c, now) for c in await certificaciones.intentos_of(session, caller.rfc)]


@router.get(
    "/{cert_id}",
    summary="Consultar un intento",
    operation_id="consultarCertificacion",
    response_description="El intento y el estado de cada escenario.",
    responses=problem_responses(*CALLER_PROBLEMS, "certificacion_no_encontrada", "solicitud_invalida"),
)
async def consultar(cert_id: CertId, caller: CallerDep, session: SessionDep) -> Intento:
    """Para ver el avance: cada escenario dice si está pendiente, aprobado o reprobado, y por qué."""
    return Intento.of(await certificaciones.intento_of(session, cert_id, caller.rfc), utc_now())


@router.delete(
    "/{cert_id}",
    summary="Cancelar un intento o una certificación",
    operation_id="cancelarCertificacion",
    response_description="Cancelada; si estaba aprobada, deja de permitir leer avisos de producción.",
    responses=problem_responses(*CALLER_PROBLEMS, "certificacion_no_encontrada", "solicitud_invalida"),
)
async def cancelar(cert_id: CertId, caller: CallerDep, session: SessionDep) -> Intento:
    """Un intento en curso deja de aceptar solicitudes del sandbox; una certificación aprobada deja de valer en
    la siguiente solicitud de avisos. El registro queda, con estado `cancelada`."""
    now = utc_now()
    return Intento.of(await certificaciones.cancel_intento(session, cert_id, caller.rfc, now), now)


@router.post(
    "/{cert_id}/escenarios/{escenario}/inicio",
    summary="Iniciar un escenario",
    operation_id="iniciarEscenario",
    response_description="El intento, con el escenario iniciado.",
    responses=problem_responses(
        *CALLER_PROBLEMS,
        "certificacion_no_encontrada",
        "intento_cerrado",
        "escenario_previo_pendiente",
        "escenario_iniciado",
        "solicitud_invalida",
        "escenario_sin_inicio",
    ),
)
async def iniciar(
    cert_id: CertId,
    escenario: Annotated[NombreEscenario, Path(description="sincronizacion_incremental o limite_de_tasa.")],
    caller: CallerDep,
    session: SessionDep,
) -> Intento:
    """sincronizacion_incremental publica avisos nuevos en el sandbox; limite_de_tasa arma un 429 con Retry-After."""
    now = utc_now()
    return Intento.of(await certificaciones.start_escenario(session, cert_id, caller.rfc, escenario.value, now), now)


@router.post(
    "/{cert_id}/evidencias",
    summary="Enviar la evidencia de un escenario",
    operation_id="enviarEvidencia",
    response_description="El veredicto, con un motivo accionable.",
    responses=problem_responses(
        "cuerpo_ilegible",
        "solicitud_demasiado_grande",
        *CALLER_PROBLEMS,
        "certificacion_no_encontrada",
        "intento_cerrado",
        "solicitud_invalida",
    ),
)
async def evidencia(
    cert_id: CertId, body: Evidencia, caller: CallerDep, session: SessionDep, settings: SettingsDep, keys: KeysDep
) -> VeredictoPublic:
    """El servicio juzga con lo que sabe: sus datos y su propio registro de solicitudes. Aprobados los cuatro
    escenarios, el intento queda `aprobada` por un año y se emite un acuse."""
    now = utc_now()
    cert, verdict = await certificaciones.judge(
        session, keys, settings, cert_id, caller.rfc, body.escenario.value, body.total, body.huella, now
    )
    return VeredictoPublic(
        escenario=verdict.escenario,
        aprobado=verdict.aprobado,
        motivo=verdict.motivo,
        certificacion=Intento.of(cert, now),
    )
