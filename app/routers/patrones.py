"""The employer's own entry in the registry: the NRPs a relación de confianza can name."""

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from app import confianza
from app.deps import CALLER_PROBLEMS, CallerDep, SessionDep
from app.problems import problem_responses

router = APIRouter(tags=["Patrones"])


class RegistroPatronal(BaseModel):
    rfc: str
    razon_social: str
    nrps: list[str]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "rfc": "TRN920807B50",
                    "razon_social": "Transportes Refrigerados del Norte, S.A. de C.V.",
                    "nrps": ["Y6067072104", "Y6075623106", "Y6199977101"],
                }
            ]
        }
    )


@router.get(
    "/v1/patron",
    summary="Mi registro en el padrón de patrones",
    operation_id="consultarPatron",
    response_description="La razón social y los NRP del patrón que llama, ordenados.",
    responses=problem_responses(*CALLER_PROBLEMS, "no_es_patron"),
)
async def consultar_patron(caller: CallerDep, session: SessionDep) -> RegistroPatronal:
    """Para un patrón: los registros patronales (NRP) que Infonavit tiene a su nombre, los que puede nombrar en
    una relación de confianza."""
    patron = await confianza.require_patron(session, caller.rfc)
    nrps = await confianza.nrps_of(session, caller.rfc)
    return RegistroPatronal(rfc=patron.rfc, razon_social=patron.razon_social, nrps=nrps)
