"""Trust relationships (DESIGN §2 flow 3) and the one authorization function of the avisos routes."""

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Exists,
    Select,
    String,
    Uuid,
    and_,
    bindparam,
    case,
    distinct,
    exists,
    false,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from app import acuses
from app.auditoria import record_event
from app.models import Certificacion, Credencial, Nrp, Patron, RelacionConfianza
from app.models.confianza import certificacion_vigente
from app.models.identidad import token_credential_in_force
from app.problems import Problem
from app.security.keys import Keys

ESTADOS = ("programada", "vigente", "vencida", "revocada")
# A start "now" sent by a client arrives a moment later; this much in the past still counts as now.
TOLERANCIA_INICIO = dt.timedelta(minutes=5)


def estado_de(relacion: RelacionConfianza, now: dt.datetime) -> str:
    if relacion.revocada_en is not None:
        return "revocada"
    if now < relacion.vigencia_inicio:
        return "programada"
    return "vigente" if now < relacion.vigencia_fin else "vencida"


def _estado_sql(now: dt.datetime) -> ColumnElement[str]:
    r = RelacionConfianza
    return case(
        (r.revocada_en.is_not(None), "revocada"),
        (r.vigencia_inicio > now, "programada"),
        (r.vigencia_fin > now, "vigente"),
        else_="vencida",
    )


def _certified(rfc: str | BindParameter[str], at: dt.datetime | BindParameter[dt.datetime]) -> Exists:
    return exists().where(Certificacion.rfc == rfc, certificacion_vigente(at))


async def is_certified(session: AsyncSession, rfc: str, now: dt.datetime) -> bool:
    return bool(await session.scalar(select(_certified(rfc, now))))


async def _patron(session: AsyncSession, rfc: str) -> Patron | None:
    return await session.get(Patron, rfc)


async def is_patron(session: AsyncSession, rfc: str) -> bool:
    return await _patron(session, rfc) is not None


async def require_patron(session: AsyncSession, rfc: str) -> Patron:
    """The employer, for the acts only an employer may do: creating relationships, its audit, its NRPs."""
    patron = await _patron(session, rfc)
    if patron is None:
        raise Problem("no_es_patron", f"{rfc} no está en el padrón de patrones.")
    return patron


async def nrps_of(session: AsyncSession, rfc: str) -> list[str]:
    return list(await session.scalars(select(Nrp.nrp).where(Nrp.rfc_patron == rfc).order_by(Nrp.nrp)))


def _whole_second_utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(microsecond=0)


async def _trusted_developer(session: AsyncSession, rfc: str, now: dt.datetime) -> Credencial:
    """Only a developer that holds an active password and a certification in force can be trusted."""
    desarrollador = await session.scalar(select(Credencial).where(Credencial.rfc == rfc, Credencial.estado == "activa"))
    if desarrollador is None:
        raise Problem("desarrollador_sin_contrasena", f"{rfc} no tiene una contraseña activa del servicio.")
    if not await is_certified(session, rfc, now):
        raise Problem("desarrollador_no_certificado", f"{rfc} no tiene una certificación aprobada y vigente.")
    return desarrollador


async def _own_nrps(session: AsyncSession, rfc_patron: str, nrps: list[str] | None) -> list[str] | None:
    """The NRPs named, each once and sorted, all the employer's own (None: all of them, later ones too)."""
    if nrps is None:
        return None
    foreign = sorted(set(nrps) - set(await nrps_of(session, rfc_patron)))
    if foreign:
        raise Problem("nrp_ajeno", f"Estos NRP no son de {rfc_patron}: {', '.join(foreign)}.", nrps=foreign)
    return sorted(set(nrps))


def _check_vigencia(inicio: dt.datetime, fin: dt.datetime, now: dt.datetime) -> None:
    if inicio < now - TOLERANCIA_INICIO:
        raise Problem("vigencia_en_el_pasado", "vigencia_inicio no puede estar en el pasado.")
    if fin <= inicio:
        raise Problem("vigencia_invalida", "vigencia_fin debe ser posterior a vigencia_inicio.")


async def _refuse_overlap(
    session: AsyncSession,
    rfc_patron: str,
    rfc_desarrollador: str,
    nrps: list[str] | None,
    inicio: dt.datetime,
    fin: dt.datetime,
    now: dt.datetime,
) -> None:
    """A pair has at most one active relationship for an NRP at a time. The lock is held to commit: one writer
    per pair at a time, so two concurrent requests cannot both pass the check."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:pair))"), {"pair": f"{rfc_patron}:{rfc_desarrollador}"}
    )
    r = RelacionConfianza
    overlapping = await session.scalar(
        select(r.id).where(
            r.rfc_patron == rfc_patron,
            r.rfc_desarrollador == rfc_desarrollador,
            r.revocada_en.is_(None),
            r.vigencia_fin > now,
            r.vigencia_inicio < fin,
            r.vigencia_fin > inicio,
            or_(r.nrps.is_(None), literal(nrps is None), r.nrps.overlap(nrps or [])),
        )
    )
    if overlapping is not None:
        raise Problem(
            "relacion_duplicada",
            f"Ya existe la relación {overlapping} con {rfc_desarrollador} que se traslapa en NRP y fechas.",
            relacion_id=str(overlapping),
        )


async def create_relacion(
    session: AsyncSession,
    keys: Keys,
    *,
    rfc_patron: str,
    rfc_desarrollador: str,
    nrps: list[str] | None,
    inicio: dt.datetime,
    fin: dt.datetime,
    now: dt.datetime,
    request_id: str | None,
) -> RelacionConfianza:
    # Both ends as a person reads them, and as the relación, its GET and its acuse all show them: whole seconds in
    # UTC (an omitted start is "now", with microseconds; a sent end may carry a fraction or an offset).
    inicio, fin = _whole_second_utc(inicio), _whole_second_utc(fin)
    patron = await require_patron(session, rfc_patron)
    desarrollador = await _trusted_developer(session, rfc_desarrollador, now)
    nrps = await _own_nrps(session, rfc_patron, nrps)
    _check_vigencia(inicio, fin, now)
    await _refuse_overlap(session, rfc_patron, rfc_desarrollador, nrps, inicio, fin, now)
    relacion_id = uuid.uuid4()
    acuse = await acuses.issue_acuse(
        session,
        keys.sellos,
        tipo="relacion.creacion",
        partes=sorted({rfc_patron, rfc_desarrollador}),
        datos={
            "relacion_id": str(relacion_id),
            "patron_rfc": rfc_patron,
            "patron_nombre": patron.razon_social,
            "desarrollador_rfc": rfc_desarrollador,
            "desarrollador_nombre": desarrollador.nombre,
            "nrps": nrps if nrps is not None else "todos",
            "vigencia_inicio": inicio.isoformat(),
            "vigencia_fin": fin.isoformat(),
        },
        now=now,
    )
    relacion = RelacionConfianza(
        id=relacion_id,
        rfc_patron=rfc_patron,
        rfc_desarrollador=rfc_desarrollador,
        nrps=nrps,
        vigencia_inicio=inicio,
        vigencia_fin=fin,
        creada_en=now,
        folio_acuse=acuse.folio,
    )
    session.add(relacion)
    await session.flush()
    await record_event(
        session,
        accion="relacion.creada",
        actor=rfc_patron,
        rfc_patron=rfc_patron,
        nrps=nrps,
        relacion_id=relacion_id,
        request_id=request_id,
        detalle={"rfc_desarrollador": rfc_desarrollador, "folio_acuse": acuse.folio},
        now=now,
    )
    return relacion


async def relacion_of_party(session: AsyncSession, relacion_id: uuid.UUID, rfc: str) -> RelacionConfianza | None:
    r = RelacionConfianza
    return await session.scalar(
        select(r).where(r.id == relacion_id, or_(r.rfc_patron == rfc, r.rfc_desarrollador == rfc))
    )


async def revoke_relacion(
    session: AsyncSession, keys: Keys, relacion_id: uuid.UUID, rfc: str, now: dt.datetime, request_id: str | None
) -> RelacionConfianza:
    """Idempotent: revoking again returns the same revocation."""
    relacion = await relacion_of_party(session, relacion_id, rfc)
    if relacion is None:
        raise not_found(relacion_id)
    if relacion.rfc_patron != rfc:
        raise Problem("solo_el_patron", "Solo el patrón que otorgó la relación puede revocarla.")
    if relacion.revocada_en is not None:
        return relacion
    await session.refresh(relacion, with_for_update=True)
    if relacion.revocada_en is not None:
        # A concurrent revocation held the row lock and committed first: its revocation is this one's answer.
        return relacion
    patron = await _patron(session, relacion.rfc_patron)
    acuse = await acuses.issue_acuse(
        session,
        keys.sellos,
        tipo="relacion.revocacion",
        partes=sorted({relacion.rfc_patron, relacion.rfc_desarrollador}),
        datos={
            "relacion_id": str(relacion.id),
            "patron_rfc": relacion.rfc_patron,
            "patron_nombre": patron.razon_social if patron else None,
            "desarrollador_rfc": relacion.rfc_desarrollador,
            "nrps": relacion.nrps if relacion.nrps is not None else "todos",
            "revocada_en": now.isoformat(),
            "acuse_de_creacion": relacion.folio_acuse,
        },
        now=now,
    )
    relacion.revocada_en, relacion.folio_acuse_revocacion = now, acuse.folio
    await session.flush()
    await record_event(
        session,
        accion="relacion.revocada",
        actor=rfc,
        rfc_patron=relacion.rfc_patron,
        nrps=relacion.nrps,
        relacion_id=relacion.id,
        request_id=request_id,
        detalle={"rfc_desarrollador": relacion.rfc_desarrollador, "folio_acuse": acuse.folio},
        now=now,
    )
    return relacion


def not_found(relacion_id: uuid.UUID) -> Problem:
    return Problem("relacion_no_encontrada", f"No hay una relación {relacion_id} visible.")


async def list_relaciones(
    session: AsyncSession,
    rfc: str,
    *,
    rol: str | None,
    estado: str | None,
    despues_de: uuid.UUID | None,
    limite: int,
    now: dt.datetime,
) -> tuple[list[RelacionConfianza], bool]:
    """Oldest first, keyset-paginated on (creada_en, id); the employer sees those it granted, the
    developer those it received."""
    r = RelacionConfianza
    roles = {"patron": r.rfc_patron == rfc, "desarrollador": r.rfc_desarrollador == rfc}
    query = select(r).where(roles[rol] if rol else or_(*roles.values()))
    if estado:
        query = query.where(_estado_sql(now) == estado)
    if despues_de is not None:
        cursor = await session.get(r, despues_de)
        if cursor is None or rfc not in (cursor.rfc_patron, cursor.rfc_desarrollador):
            raise Problem("cursor_invalido", "despues_de no es una relación de esta lista.")
        query = query.where(func.row(r.creada_en, r.id) > func.row(cursor.creada_en, cursor.id))
    rows = list(await session.scalars(query.order_by(r.creada_en, r.id).limit(limite + 1)))
    return rows[:limite], len(rows) > limite


# ------------------------------------------------------------------ authorization


def _access_query() -> Select[Any]:
    """The caller's access in one statement, verdict included: its credential still active, its certification,
    whether the employer exists, the trust relationships in force for (:patron, :rfc) at :at with the NRPs they
    cover, and from those the answer to :nrps (NULL = all it may): `motivo` (NULL when allowed), `lee_nrps`
    (the NRPs the read filters, NULL = all) and `legibles` (every NRP it may read, NULL = all). The rule lives
    here only: verdict() maps the row to Python, and a hot path gates its page on `motivo IS NULL`.
    Built once; each call binds :rfc, :patron, :at, :nrps and :credencial_id. NULL :credencial_id (a caller
    already checked) skips the credential."""
    rfc: BindParameter[str] = bindparam("rfc", type_=String())
    patron: BindParameter[str] = bindparam("patron", type_=String())
    at: BindParameter[dt.datetime] = bindparam("at", type_=DateTime(timezone=True))
    credencial: BindParameter[uuid.UUID | None] = bindparam("credencial_id", type_=Uuid())
    asked: BindParameter[Any] = bindparam("nrps", type_=ARRAY(String(11)))
    r = RelacionConfianza
    vigentes = (
        select(r.id, r.nrps)
        .where(
            r.rfc_patron == patron,
            r.rfc_desarrollador == rfc,
            r.revocada_en.is_(None),
            r.vigencia_inicio <= at,
            r.vigencia_fin > at,
        )
        .cte("vigentes")
    )
    # Joined LATERAL to the relationships it unnests: written as a second FROM, SQLAlchemy warns of a cartesian
    # product (the SQL is the same; the warning would hide a real one).
    nrp = func.unnest(vigentes.c.nrps).table_valued("n").lateral("n")
    facts = select(
        token_credential_in_force(credencial, rfc).label("activa"),
        _certified(rfc, at).label("certificado"),
        exists().where(Patron.rfc == patron).label("patron"),
        func.coalesce(select(func.bool_or(vigentes.c.nrps.is_(None))).scalar_subquery(), false()).label("todas"),
        select(func.array_agg(distinct(nrp.c.n)))
        .select_from(vigentes.join(nrp, true()))
        .scalar_subquery()
        .label("nrps"),
        # In id order: the same relationships always read the same (the audit row names the first).
        select(func.array_agg(aggregate_order_by(vigentes.c.id, vigentes.c.id))).scalar_subquery().label("relaciones"),
    ).subquery("hechos")
    own = rfc == patron  # desarrollo propio: an employer reads its own avisos with no relationship
    every_nrp = or_(own, facts.c.todas)
    covered = func.coalesce(facts.c.nrps, literal([], ARRAY(String(11))))
    motivo = case(
        (and_(credencial.is_not(None), not_(facts.c.activa)), literal("credencial_no_vigente")),
        (not_(facts.c.certificado), literal("sin_certificacion")),
        (not_(facts.c.patron), literal("sin_relacion")),
        (own, null()),
        (facts.c.relaciones.is_(None), literal("sin_relacion")),
        (facts.c.todas, null()),
        (and_(asked.is_not(None), not_(asked.contained_by(covered))), literal("sin_relacion")),
        else_=null(),
    )
    return select(
        facts.c.activa,
        facts.c.certificado,
        facts.c.patron,
        motivo.label("motivo"),
        case((asked.is_not(None), asked), (every_nrp, null()), else_=covered).label("lee_nrps"),
        case((every_nrp, null()), else_=covered).label("legibles"),
        case((own, null()), else_=facts.c.relaciones).label("relaciones"),
    )


_ACCESS = _access_query()


def access_statement() -> Select[Any]:
    """The single copy of the access rule: authorize() reads it, and a hot path may embed it beside its own
    query and hand the row to verdict()."""
    return _ACCESS


@dataclass(frozen=True)
class Denegacion:
    """Why not: `credencial_no_vigente` (its password was renewed or cancelled; asked only when the caller's
    credential is given), `sin_certificacion` (about the caller itself) or `sin_relacion` (said the same whether
    or not the employer exists)."""

    motivo: str


@dataclass(frozen=True)
class Autorizacion:
    """What the caller may read of one employer now: its NRPs (None = all) and the relationships that allow it
    (none for desarrollo propio)."""

    nrps: list[str] | None
    relaciones: list[uuid.UUID]
    # Every NRP the caller may read of that employer (None = all), whatever it asked for: the bounds of a cursor.
    legibles: list[str] | None = None


async def authorize(
    session: AsyncSession,
    rfc: str,
    rfc_patron: str,
    nrps: list[str] | None,
    at: dt.datetime,
    *,
    credencial_id: uuid.UUID | None = None,
) -> Autorizacion | Denegacion:
    """May `rfc` read the avisos of `rfc_patron` for `nrps` (None = all it may) at `at`? With `credencial_id`,
    also whether that credential of `rfc` is still active. One query, from the database state at call time:
    a revocation is effective on the very next call."""
    params = {"rfc": rfc, "patron": rfc_patron, "at": at, "credencial_id": credencial_id, "nrps": nrps}
    return verdict((await session.execute(access_statement(), params)).mappings().one())


def verdict(row: Mapping[str, Any]) -> Autorizacion | Denegacion:
    """authorize()'s answer from a row of access_statement(), wherever that row was read (its columns by name):
    the statement decided, this only reads its answer."""
    if row["motivo"] is not None:
        return Denegacion(row["motivo"])
    # Sorted: the same NRPs always read the same (filters, cursor bounds, audit rows).
    nrps, legibles = (sorted(set(row[c])) if row[c] is not None else None for c in ("lee_nrps", "legibles"))
    return Autorizacion(nrps=nrps, relaciones=list(row["relaciones"] or []), legibles=legibles)
