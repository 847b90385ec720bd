"""The catalogs: CSV files shipped beside this module (or the operator's, from SIA_CATALOGS_DIR),
synchronized into their tables by `sia db upgrade`, and read by the API and the loaders."""

import csv
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import String, null, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.models import Aviso, EstatusCredito, TipoAviso, TipoCredito, TipoDescuento
from app.models.catalogo import CLASES

SHIPPED_DIR = Path(__file__).parent


@dataclass(frozen=True)
class Catalogo:
    nombre: str  # as in the URL and the CSV file name
    descripcion: str
    modelo: type[TipoAviso | TipoDescuento | TipoCredito | EstatusCredito]


CATALOGOS: dict[str, Catalogo] = {
    c.nombre: c
    for c in (
        Catalogo("tipos-aviso", "Tipos de aviso (CatAvisos) con su clase", TipoAviso),
        Catalogo("tipos-descuento", "Tipos de descuento", TipoDescuento),
        Catalogo("tipos-credito", "Tipos de crédito", TipoCredito),
        Catalogo("estatus-credito", "Estatus del crédito", EstatusCredito),
    )
}


class CatalogError(ValueError):
    pass


def read_catalog_csv(catalogo: Catalogo, folder: Path = SHIPPED_DIR) -> list[dict]:
    path = folder / f"{catalogo.nombre}.csv"
    table = catalogo.modelo.__table__
    codigo_type = table.c.codigo.type
    # Every catalog's codigo is a String(n) (app/models/catalogo.py): the CSV is held to that width.
    assert isinstance(codigo_type, String) and codigo_type.length is not None
    width = codigo_type.length
    expected = ["codigo", "descripcion", *(["clase"] if "clase" in table.c else []), "provisional"]
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != expected:
            raise CatalogError(f"{path}: el encabezado debe ser {','.join(expected)}")
        rows = []
        for line, row in enumerate(reader, start=2):
            codigo = row["codigo"].strip()
            if not codigo or len(codigo) > width:
                raise CatalogError(f"{path}:{line}: código vacío o de más de {width} caracteres")
            if "clase" in row and row["clase"] not in CLASES:
                raise CatalogError(f"{path}:{line}: clase debe ser una de {', '.join(CLASES)}")
            if row["provisional"] not in ("true", "false"):
                raise CatalogError(f"{path}:{line}: provisional debe ser true o false")
            rows.append({**row, "codigo": codigo, "provisional": row["provisional"] == "true"})
    return rows


async def sync_catalogs(conn: AsyncConnection, folder: Path | None = None) -> dict[str, int]:
    """Upsert every catalog from CSV. Entries are never deleted (avisos reference them), and a tipo de
    aviso that avisos already use keeps its clase, because each aviso stores the clase it was published with."""
    counts = {}
    for catalogo in CATALOGOS.values():
        rows = read_catalog_csv(catalogo, folder or SHIPPED_DIR)
        if catalogo.modelo is TipoAviso:
            await _refuse_clase_change(conn, rows)
        stmt = insert(catalogo.modelo).values(rows)
        update = {c: stmt.excluded[c] for c in rows[0] if c != "codigo"}
        await conn.execute(stmt.on_conflict_do_update(index_elements=["codigo"], set_=update))
        counts[catalogo.nombre] = len(rows)
    return counts


async def _refuse_clase_change(conn: AsyncConnection, rows: list[dict]) -> None:
    new_clase = {r["codigo"]: r["clase"] for r in rows}
    used = await conn.execute(select(Aviso.tipo_aviso, Aviso.clase).distinct())
    for codigo, clase in used:
        if codigo in new_clase and new_clase[codigo] != clase:
            raise CatalogError(
                f"tipo de aviso {codigo}: hay avisos publicados con clase {clase}; "
                f"no puede cambiar a {new_clase[codigo]}"
            )


async def catalog_entries(session: AsyncSession, catalogo: Catalogo) -> list[dict]:
    model = catalogo.modelo
    rows = await session.execute(select(model).order_by(model.codigo))
    columns = [c.name for c in model.__table__.c]
    return [{c: getattr(entry, c) for c in columns} for entry in rows.scalars()]


async def catalog_codes(conn: AsyncConnection) -> dict[str, dict[str, str | None]]:
    """Every code per catalog name, mapped to its clase (tipos de aviso) or None; for the loaders."""
    codes: dict[str, dict[str, str | None]] = {}
    for catalogo in CATALOGOS.values():
        table = catalogo.modelo.__table__
        clase = table.c.clase if "clase" in table.c else null()
        result = await conn.execute(select(table.c.codigo, clase))
        codes[catalogo.nombre] = dict(result.all())
    return codes
