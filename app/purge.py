"""What the service stops needing: expired e.firma challenges, lockout rows whose window has passed, and the
sandbox avisos of certification attempts that ended. `sia purgar` runs it once; `sia serve` on a schedule."""

import asyncio
import datetime as dt
import logging
from dataclasses import asdict, dataclass

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import Database
from app.models import BloqueoToken, Certificacion, Reto, SandboxAviso, SandboxSolicitud
from app.settings import Settings

log = logging.getLogger(__name__)
# An expired challenge is kept this long, so that a late client still hears reto_vencido, not reto_desconocido.
RETO_RETENTION = dt.timedelta(days=1)
# The advisory lock key of the scheduled purge (any constant no other part of the service uses).
PURGE_LOCK = 0x5349_4150  # "SIAP"


@dataclass(frozen=True)
class Purged:
    retos: int
    bloqueos: int
    sandbox_avisos: int
    sandbox_solicitudes: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


async def purge(conn: AsyncConnection, settings: Settings, now: dt.datetime) -> Purged:
    """One pass, in the caller's transaction; every statement is idempotent, so replicas may overlap."""
    retos = await conn.execute(delete(Reto).where(Reto.expira_en < now - RETO_RETENTION))
    window = dt.timedelta(minutes=settings.lockout_minutes)
    bloqueos = await conn.execute(
        delete(BloqueoToken).where(
            BloqueoToken.primer_fallo < now - window,
            or_(BloqueoToken.bloqueado_hasta.is_(None), BloqueoToken.bloqueado_hasta < now),
        )
    )
    c = Certificacion
    ended = select(c.id).where(or_(c.estado != "en_curso", c.expira_en <= now))
    avisos = await conn.execute(delete(SandboxAviso).where(SandboxAviso.certificacion_id.in_(ended)))
    # The request log of an approved attempt is the evidence it was judged on: kept. Of the others, not needed.
    failed = select(c.id).where(
        or_(c.estado.in_(("cancelada", "vencida")), (c.estado == "en_curso") & (c.expira_en <= now))
    )
    solicitudes = await conn.execute(delete(SandboxSolicitud).where(SandboxSolicitud.certificacion_id.in_(failed)))
    return Purged(retos.rowcount, bloqueos.rowcount, avisos.rowcount, solicitudes.rowcount)


async def purge_periodically(database: Database, settings: Settings, every: dt.timedelta) -> None:
    """Runs until cancelled (the app's shutdown). A failed pass is logged and tried again next time."""
    while True:
        await asyncio.sleep(every.total_seconds())
        try:
            async with database.engine.begin() as conn:
                # Every worker of every replica runs this schedule: one pass at a time is enough, and two passes
                # deleting the same rows at once could deadlock on them.
                if not await conn.scalar(select(func.pg_try_advisory_xact_lock(PURGE_LOCK))):
                    continue
                purged = await purge(conn, settings, dt.datetime.now(dt.UTC))
            log.info("purge done: %s", purged.as_dict())
        except Exception:
            log.exception("purge failed; trying again in %s", every)
