"""Trust relationships and the employer's audit view."""

import datetime as dt
import uuid
from enum import StrEnum
from typing import Annotated, Any

from asgi_correlation_id import correlation_id
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonDict
from sqlalchemy.ext.asyncio import AsyncSession

from app import auditoria, confianza
from app.deps import CALLER_PROBLEMS, CallerDep, KeysDep, SessionDep, utc_now
from app.identifiers import BIGINT_MAXIMO, NRP, RFC, FechaHora
from app.models import EventoAuditoria, RelacionConfianza
from app.problems import Problem, ProblemCode, problem_responses
from app.security.keys import Keys

router = APIRouter()
# Built from the domain's tuple so the API cannot drift from it; mypy cannot list the members of such an enum.
EstadoRelacion = StrEnum("EstadoRelacion", {e: e for e in confianza.ESTADOS})  # type: ignore[misc]
Rol = StrEnum("Rol", {"patron": "patron", "desarrollador": "desarrollador"})
RelacionId = Annotated[uuid.UUID, Path(description="El `id` de la relación.")]


EJEMPLO_RELACION: JsonDict = {
    "id": "5b0f7c1e-8d2a-4c3b-9e51-2f6a7d8c9b10",
    "rfc_patron": "TRN920807B50",
    "rfc_desarrollador": "XIQB891116QE4",
    "nrps": ["Y6067072104", "Y6199977101"],
    "vigencia_inicio": "2026-12-01T06:00:00Z",
    "vigencia_fin": "2027-12-01T06:00:00Z",
    "estado": "programada",
    "creada_en": "2026-11-24T16:02:11.204518Z",
    "revocada_en": None,
    "folio_acuse": "ACU-20261124-3F9A0C21B7",
    "folio_acuse_revocacion": None,
}


class SolicitudRelacion(BaseModel):
    rfc_desarrollador: RFC
    nrps: list[NRP] | None = Field(
        default=None,
        min_length=1,
        max_length=5000,
        description="NRP cubiertos; si se omite, todos los del patrón, incluidos los que registre después.",
    )
    vigencia_inicio: FechaHora | None = Field(
        default=None,
        description="ISO 8601; sin zona se entiende hora del centro de México. No puede estar en el pasado. "
        "Si se omite, la relación vale desde ahora.",
    )
    vigencia_fin: FechaHora

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "rfc_desarrollador": "XIQB891116QE4",
                    "nrps": ["Y6067072104", "Y6199977101"],
                    "vigencia_inicio": "2026-12-01T00:00:00-06:00",
                    "vigencia_fin": "2027-12-01T00:00:00-06:00",
                }
            ]
        }
    )


class Relacion(BaseModel):
    id: uuid.UUID
    rfc_patron: str
    rfc_desarrollador: str
    nrps: list[str] | None = Field(description="null: todos los NRP del patrón.")
    vigencia_inicio: dt.datetime = Field(description="En UTC y en segundos enteros, como `vigencia_fin`.")
    vigencia_fin: dt.datetime = Field(description="En UTC y en segundos enteros (la fracción enviada se descarta).")
    estado: EstadoRelacion = Field(description="Derivado del reloj: programada, vigente, vencida o revocada.")
    creada_en: dt.datetime
    revocada_en: dt.datetime | None
    folio_acuse: str
    folio_acuse_revocacion: str | None

    model_config = ConfigDict(json_schema_extra={"examples": [EJEMPLO_RELACION]})

    @classmethod
    def of(cls, relacion: RelacionConfianza, now: dt.datetime) -> "Relacion":
        return cls.model_validate(
            {
                **{c: getattr(relacion, c) for c in cls.model_fields if c != "estado"},
                "estado": confianza.estado_de(relacion, now),
            }
        )


class PaginaRelaciones(BaseModel):
    relaciones: list[Relacion]
    hay_mas: bool
    siguiente: uuid.UUID | None = Field(description="Páselo como despues_de para la página siguiente.")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"relaciones": [EJEMPLO_RELACION], "hay_mas": False, "siguiente": None}]}
    )


# What creating a relationship can answer beyond the caller's own problems (the API's and the portal's alike).
CREATE_PROBLEMS: tuple[ProblemCode, ...] = (
    "no_es_patron",
    "relacion_duplicada",
    "solicitud_invalida",
    "desarrollador_sin_contrasena",
    "desarrollador_no_certificado",
    "nrp_ajeno",
    "vigencia_en_el_pasado",
    "vigencia_invalida",
)


async def create(session: AsyncSession, keys: Keys, rfc_patron: str, body: SolicitudRelacion) -> Relacion:
    """The employer `rfc_patron` trusts a developer, as asked by the API or by the portal."""
    now = utc_now()
    relacion = await confianza.create_relacion(
        session,
        keys,
        rfc_patron=rfc_patron,
        rfc_desarrollador=body.rfc_desarrollador,
        nrps=body.nrps,
        inicio=body.vigencia_inicio or now,
        fin=body.vigencia_fin,
        now=now,
        request_id=correlation_id.get(),
    )
    return Relacion.of(relacion, now)


@router.post(
    "/v1/relaciones-confianza",
    tags=["Relaciones de confianza"],
    status_code=201,
    summary="Registrar una relación de confianza",
    operation_id="crearRelacionConfianza",
    response_description="La relación, con su estado y el folio de su acuse.",
    responses=problem_responses("cuerpo_ilegible", "solicitud_demasiado_grande", *CALLER_PROBLEMS, *CREATE_PROBLEMS),
)
async def crear_relacion(body: SolicitudRelacion, caller: CallerDep, session: SessionDep, keys: KeysDep) -> Relacion:
    """Solo un patrón del padrón. El desarrollador debe tener contraseña y certificación vigente; un patrón
    puede nombrarse a sí mismo (desarrollo propio). Una relación activa del mismo par que se traslape en NRP
    y fechas es 409."""
    return await create(session, keys, caller.rfc, body)


@router.get(
    "/v1/relaciones-confianza",
    tags=["Relaciones de confianza"],
    summary="Listar relaciones de confianza",
    operation_id="listarRelacionesConfianza",
    response_description="Las otorgadas (patrón) y las recibidas (desarrollador), de la más antigua a la más nueva.",
    responses=problem_responses(*CALLER_PROBLEMS, "solicitud_invalida", "cursor_invalido"),
)
async def listar_relaciones(
    caller: CallerDep,
    session: SessionDep,
    rol: Annotated[Rol | None, Query(description="Solo como patrón o solo como desarrollador.")] = None,
    estado: Annotated[EstadoRelacion | None, Query(description="Solo las relaciones en este estado.")] = None,
    despues_de: Annotated[uuid.UUID | None, Query(description="El `siguiente` de la página anterior.")] = None,
    limite: Annotated[int, Query(ge=1, le=200, description="Relaciones por página.")] = 50,
) -> PaginaRelaciones:
    """Un patrón ve las que otorgó; un desarrollador, las que recibió; quien es ambos, todas (o filtre con `rol`).
    Se pagina con `despues_de` = el `siguiente` de la página anterior."""
    now = utc_now()
    rows, more = await confianza.list_relaciones(
        session,
        caller.rfc,
        rol=rol.value if rol else None,
        estado=estado.value if estado else None,
        despues_de=despues_de,
        limite=limite,
        now=now,
    )
    return PaginaRelaciones(
        relaciones=[Relacion.of(r, now) for r in rows], hay_mas=more, siguiente=rows[-1].id if more else None
    )


@router.get(
    "/v1/relaciones-confianza/{relacion_id}",
    tags=["Relaciones de confianza"],
    summary="Consultar una relación de confianza",
    operation_id="consultarRelacionConfianza",
    response_description="La relación, si quien llama es parte de ella.",
    responses=problem_responses(*CALLER_PROBLEMS, "relacion_no_encontrada", "solicitud_invalida"),
)
async def consultar_relacion(relacion_id: RelacionId, caller: CallerDep, session: SessionDep) -> Relacion:
    """Para quien no es parte, 404: lo mismo que si no existiera."""
    relacion = await confianza.relacion_of_party(session, relacion_id, caller.rfc)
    if relacion is None:
        raise confianza.not_found(relacion_id)
    return Relacion.of(relacion, utc_now())


@router.delete(
    "/v1/relaciones-confianza/{relacion_id}",
    tags=["Relaciones de confianza"],
    summary="Revocar una relación de confianza",
    operation_id="revocarRelacionConfianza",
    response_description="La relación revocada con el folio del acuse de revocación (repetir da el mismo).",
    responses=problem_responses(*CALLER_PROBLEMS, "solo_el_patron", "relacion_no_encontrada", "solicitud_invalida"),
)
async def revocar_relacion(relacion_id: RelacionId, caller: CallerDep, session: SessionDep, keys: KeysDep) -> Relacion:
    """Solo el patrón. Surte efecto en la siguiente solicitud de avisos del desarrollador."""
    now = utc_now()
    relacion = await confianza.revoke_relacion(session, keys, relacion_id, caller.rfc, now, correlation_id.get())
    return Relacion.of(relacion, now)


class Evento(BaseModel):
    id: int
    ocurrido_en: dt.datetime
    accion: str = Field(
        description="avisos.consulta, avisos.consulta_rechazada (quién intentó leer y por qué se le negó: "
        "`detalle.motivo`), relacion.creada, relacion.revocada"
    )
    actor: str | None = Field(description="RFC de quien actuó.")
    nrps: list[str] | None
    cantidad: int | None = Field(description="Avisos entregados, en consultas.")
    relacion_id: uuid.UUID | None
    request_id: str | None
    detalle: dict[str, Any]


class PaginaAuditoria(BaseModel):
    eventos: list[Evento]
    hay_mas: bool
    siguiente: int | None = Field(description="Páselo como antes_de para la página siguiente.")

    @classmethod
    def of(cls, rows: list[EventoAuditoria], more: bool) -> "PaginaAuditoria":
        return cls(
            eventos=[Evento.model_validate(r, from_attributes=True) for r in rows],
            hay_mas=more,
            siguiente=rows[-1].id if more else None,
        )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "eventos": [
                        {
                            "id": 48213,
                            "ocurrido_en": "2026-12-02T14:30:05.118204Z",
                            "accion": "avisos.consulta",
                            "actor": "XIQB891116QE4",
                            "nrps": ["Y6067072104", "Y6199977101"],
                            "cantidad": 1000,
                            "relacion_id": "5b0f7c1e-8d2a-4c3b-9e51-2f6a7d8c9b10",
                            "request_id": "8f0e6c2d4b6a4e1f9c3d2b1a0f9e8d7c",
                            "detalle": {
                                "filtros": {"rfc_patron": "TRN920807B50", "nrps": ["Y6067072104", "Y6199977101"]},
                                "relaciones": ["5b0f7c1e-8d2a-4c3b-9e51-2f6a7d8c9b10"],
                                "limite": 1000,
                                "despues_de": "20262600000003",
                                "completo": True,
                            },
                        }
                    ],
                    "hay_mas": True,
                    "siguiente": 48213,
                }
            ]
        }
    )


@router.get(
    "/v1/auditoria",
    tags=["Registro de lecturas"],
    summary="Quién consultó los avisos del patrón",
    operation_id="consultarAuditoria",
    response_description="Eventos del patrón, del más reciente al más antiguo.",
    responses=problem_responses(*CALLER_PROBLEMS, "no_es_patron", "solicitud_invalida", "rango_invalido"),
)
async def consultar_auditoria(
    caller: CallerDep,
    session: SessionDep,
    desde: Annotated[FechaHora | None, Query(description="Eventos desde este momento (ISO 8601).")] = None,
    hasta: Annotated[FechaHora | None, Query(description="Eventos antes de este momento (ISO 8601).")] = None,
    desarrollador: Annotated[RFC | None, Query(description="Solo los eventos de este RFC.")] = None,
    antes_de: Annotated[
        int | None, Query(ge=1, le=BIGINT_MAXIMO, description="El `siguiente` de la página anterior.")
    ] = None,
    limite: Annotated[int, Query(ge=1, le=500, description="Eventos por página.")] = 100,
) -> PaginaAuditoria:
    """Solo patrones: quién leyó sus avisos, cuándo, de qué NRP, cuántos y con qué relación; y sus relaciones."""
    await confianza.require_patron(session, caller.rfc)
    if desde and hasta and desde >= hasta:
        raise Problem("rango_invalido", "desde debe ser anterior a hasta.")
    rows, more = await auditoria.list_eventos(
        session, caller.rfc, desde=desde, hasta=hasta, desarrollador=desarrollador, antes_de=antes_de, limite=limite
    )
    return PaginaAuditoria.of(rows, more)
