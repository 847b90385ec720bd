"""The audit log's write and read sides (the employer's view: who read its avisos, and its relationships)."""

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.models import EventoAuditoria


async def record_event(
    db: AsyncSession | AsyncConnection,
    *,
    accion: str,
    actor: str | None,
    rfc_patron: str | None,
    now: dt.datetime,
    nrps: list[str] | None = None,
    cantidad: int | None = None,
    relacion_id: uuid.UUID | None = None,
    request_id: str | None = None,
    detalle: dict[str, Any] | None = None,
) -> None:
    """One audit row, in the caller's transaction; a session (routes) or a connection (loaders)."""
    await db.execute(
        insert(EventoAuditoria).values(
            ocurrido_en=now,
            accion=accion,
            actor=actor,
            rfc_patron=rfc_patron,
            nrps=nrps,
            cantidad=cantidad,
            relacion_id=relacion_id,
            request_id=request_id,
            detalle=detalle or {},
        )
    )


async def list_eventos(
    session: AsyncSession,
    rfc_patron: str,
    *,
    desde: dt.datetime | None,
    hasta: dt.datetime | None,
    desarrollador: str | None,
    antes_de: int | None,
    limite: int,
) -> tuple[list[EventoAuditoria], bool]:
    """Newest first, keyset-paginated on id."""
    e = EventoAuditoria
    query = select(e).where(e.rfc_patron == rfc_patron)
    if desde is not None:
        query = query.where(e.ocurrido_en >= desde)
    if hasta is not None:
        query = query.where(e.ocurrido_en < hasta)
    if desarrollador is not None:
        query = query.where(e.actor == desarrollador)
    if antes_de is not None:
        query = query.where(e.id < antes_de)
    rows = list(await session.scalars(query.order_by(e.id.desc()).limit(limite + 1)))
    return rows[:limite], len(rows) > limite
