"""The audit log's write and read sides (the employer's view: who read its avisos, and its relationships)."""

import datetime as dt
import uuid
from typing import Any, NotRequired, TypedDict, Unpack

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.models import EventoAuditoria


class Evento(TypedDict):
    """What an audit row says: the arguments of record_event and of AuditWriter.record."""

    accion: str
    actor: str | None
    rfc_patron: str | None
    now: dt.datetime
    nrps: NotRequired[list[str] | None]
    cantidad: NotRequired[int | None]
    relacion_id: NotRequired[uuid.UUID | None]
    request_id: NotRequired[str | None]
    detalle: NotRequired[dict[str, Any] | None]


def event_values(**event: Unpack[Evento]) -> dict[str, Any]:
    """One audit row's columns: written now (record_event) or later (app.audit_writer)."""
    values: dict[str, Any] = {"nrps": None, "cantidad": None, "relacion_id": None, "request_id": None, **event}
    values["ocurrido_en"] = values.pop("now")
    values["detalle"] = values.get("detalle") or {}
    return values


async def record_event(db: AsyncSession | AsyncConnection, **event: Unpack[Evento]) -> None:
    """One audit row, in the caller's transaction; a session (routes) or a connection (loaders)."""
    await db.execute(insert(EventoAuditoria).values(event_values(**event)))


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
