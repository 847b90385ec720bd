from enum import StrEnum

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.catalogs import CATALOGOS, catalog_entries
from app.db import Session
from app.problems import problem_responses

router = APIRouter(prefix="/v1/catalogos", tags=["Catálogos"])

NombreCatalogo = StrEnum("NombreCatalogo", {n.replace("-", "_"): n for n in CATALOGOS})


class EntradaCatalogo(BaseModel):
    codigo: str = Field(examples=["10"])
    descripcion: str = Field(examples=["Pronta culminación"])
    clase: str | None = Field(
        default=None,
        description="Solo en tipos-aviso: retencion, modificacion o suspension.",
        examples=["suspension"],
    )
    provisional: bool = Field(
        description="true mientras Infonavit no publique su catálogo oficial y la entrada sea provisional.",
        examples=[False],
    )


class Catalogo(BaseModel):
    nombre: str = Field(examples=["tipos-aviso"])
    descripcion: str = Field(examples=["Tipos de aviso (CatAvisos) con su clase"])
    entradas: list[EntradaCatalogo]


@router.get(
    "/{nombre}",
    summary="Consultar un catálogo",
    operation_id="consultarCatalogo",
    response_description="El catálogo con sus entradas ordenadas por código.",
    responses=problem_responses("solicitud_invalida"),
)
async def consultar_catalogo(nombre: NombreCatalogo, session: Session) -> Catalogo:
    """Los códigos que usan los avisos. `tipos-aviso` dice a qué clase pertenece cada tipo.
    Infonavit no ha publicado su catálogo oficial: toda entrada con `provisional: true` puede cambiar."""
    catalogo = CATALOGOS[nombre.value]
    entradas = await catalog_entries(session, catalogo)
    return Catalogo(
        nombre=catalogo.nombre,
        descripcion=catalogo.descripcion,
        entradas=[EntradaCatalogo(**e) for e in entradas],
    )
