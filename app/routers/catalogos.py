from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from app.catalogs import CATALOGOS, catalog_entries
from app.deps import SessionDep
from app.problems import problem_responses

router = APIRouter(prefix="/v1/catalogos", tags=["Tablas de referencia"])

# Built from the catalog registry so the API cannot drift from it; mypy cannot list the members of such an enum.
NombreCatalogo = StrEnum("NombreCatalogo", {n.replace("-", "_"): n for n in CATALOGOS})  # type: ignore[misc]


class EntradaCatalogo(BaseModel):
    codigo: str
    descripcion: str
    clase: str | None = Field(default=None, description="Solo en tipos-aviso: retencion, modificacion o suspension.")
    provisional: bool = Field(
        description="true mientras Infonavit no publique su catálogo oficial y la entrada sea provisional."
    )


class Catalogo(BaseModel):
    nombre: str
    descripcion: str
    entradas: list[EntradaCatalogo]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "nombre": "tipos-aviso",
                    "descripcion": "Tipos de aviso (CatAvisos) con su clase",
                    "entradas": [
                        {
                            "codigo": "01",
                            "descripcion": "Inicio de retención de descuentos",
                            "clase": "retencion",
                            "provisional": True,
                        },
                        {
                            "codigo": "10",
                            "descripcion": "Pronta culminación",
                            "clase": "suspension",
                            "provisional": False,
                        },
                    ],
                }
            ]
        }
    )


@router.get(
    "/{nombre}",
    summary="Consultar un catálogo",
    operation_id="consultarCatalogo",
    response_description="El catálogo con sus entradas ordenadas por código.",
    responses=problem_responses("solicitud_invalida"),
)
async def consultar_catalogo(
    nombre: Annotated[NombreCatalogo, Path(description="El catálogo.")], session: SessionDep
) -> Catalogo:
    """Los códigos que usan los avisos. `tipos-aviso` dice a qué clase pertenece cada tipo.
    Infonavit no ha publicado su catálogo oficial: toda entrada con `provisional: true` puede cambiar."""
    catalogo = CATALOGOS[nombre.value]
    entradas = await catalog_entries(session, catalogo)
    return Catalogo(
        nombre=catalogo.nombre,
        descripcion=catalogo.descripcion,
        entradas=[EntradaCatalogo(**e) for e in entradas],
    )
