"""Certification (DESIGN §2 flow 4): an attempt gets a sandbox employer with random synthetic avisos; the
developer's software passes four scenarios, each judged by the service from its data and its own request
log, never from the developer's word. Passing all four approves the certification and issues an acuse."""

import datetime as dt
import hashlib
import random
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app import acuses, publicacion
from app.demo import CLASE_POR_TIPO_AVISO, DemoPatron, demo_avisos, demo_patrones
from app.models import Certificacion, SandboxAviso, SandboxSolicitud
from app.models.aviso import CAMPOS_CARGA_AVISO
from app.problems import Problem
from app.security.keys import Keys
from app.settings import Settings

ESCENARIOS = ("descarga_completa", "descarga_filtrada", "sincronizacion_incremental", "limite_de_tasa")
DESCRIPCIONES = {
    "descarga_completa": "Descargue todos los avisos del patrón de pruebas, página por página (máximo 500 por página).",
    "descarga_filtrada": "Descargue solo los avisos de la clase y las fechas de emisión indicadas, con los filtros.",
    "sincronizacion_incremental": (
        "Después de aprobar descarga_completa, llame a .../escenarios/sincronizacion_incremental/inicio; se publican "
        "avisos nuevos: obténgalos con despues_de = el último folio que ya tiene, sin descargar todo de nuevo."
    ),
    "limite_de_tasa": (
        "Llame a .../escenarios/limite_de_tasa/inicio y descargue todo de nuevo: una respuesta será 429 con "
        "Retry-After; espere al menos esos segundos antes de la siguiente solicitud y termine la descarga."
    ),
}
EVIDENCE = "Evidencia: {total, huella}, huella = SHA-256 (hex) de los folios ordenados y unidos con '\\n'."


def huella(folios: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(folios)).encode()).hexdigest()


def estado_de(cert: Certificacion, now: dt.datetime) -> str:
    if cert.estado == "en_curso" and cert.expira_en is not None and cert.expira_en <= now:
        return "vencida"
    if cert.estado == "aprobada" and cert.vigente_hasta is not None and cert.vigente_hasta <= now:
        return "vencida"
    return cert.estado


# ------------------------------------------------------------------ attempts


async def _insert_avisos(session: AsyncSession, cert_id: uuid.UUID, lote: int, avisos: list[dict]) -> None:
    columns = ("certificacion_id", "lote", *CAMPOS_CARGA_AVISO, "clase")
    # Text, as a load file carries it: publish_records writes values in COPY's text format.
    records = [
        (str(cert_id), str(lote), *(a[c] for c in CAMPOS_CARGA_AVISO), CLASE_POR_TIPO_AVISO[a["tipo_aviso"]])
        for a in avisos
    ]
    await publicacion.publish_records(await session.connection(), "sandbox_aviso", columns, records)


async def open_intento(session: AsyncSession, rfc: str, settings: Settings, now: dt.datetime) -> Certificacion:
    rng = random.SystemRandom()  # the attempt's content must not be predictable
    seed = rng.randrange(10**6)
    employer = demo_patrones(1, seed=seed)[0]
    count = rng.randint(2000, 8000)
    avisos = list(demo_avisos([employer], count, seed=seed, hasta=now.date()))
    fechas = sorted({a["fecha_emision"] for a in avisos})
    start = rng.randrange(max(1, len(fechas) - 60))
    desde, hasta = fechas[start], fechas[min(start + rng.randint(45, 120), len(fechas) - 1)]
    cert = Certificacion(
        id=uuid.uuid4(),
        rfc=rfc,
        estado="en_curso",
        creada_en=now,
        expira_en=now + dt.timedelta(days=settings.intento_vigencia_dias),
        sandbox_rfc=employer.rfc,
        sandbox_nrps=list(employer.nrps),
        escenarios={
            "descarga_completa": {"estado": "pendiente"},
            "descarga_filtrada": {
                "estado": "pendiente",
                "parametros": {
                    "clase": rng.choice(["retencion", "modificacion", "suspension"]),
                    "emitidos_desde": desde,
                    "emitidos_hasta": hasta,
                },
            },
            "sincronizacion_incremental": {"estado": "pendiente"},
            "limite_de_tasa": {"estado": "pendiente"},
        },
    )
    session.add(cert)
    await session.flush()
    await _insert_avisos(session, cert.id, 0, avisos)
    return cert


async def intento_of(session: AsyncSession, cert_id: uuid.UUID, rfc: str, *, lock: bool = False) -> Certificacion:
    query = select(Certificacion).where(Certificacion.id == cert_id, Certificacion.rfc == rfc)
    cert = await session.scalar(query.with_for_update() if lock else query)
    if cert is None:
        raise Problem("certificacion_no_encontrada", f"No hay un intento {cert_id} suyo.")
    return cert


async def intentos_of(session: AsyncSession, rfc: str) -> list[Certificacion]:
    return list(
        await session.scalars(
            select(Certificacion).where(Certificacion.rfc == rfc).order_by(Certificacion.creada_en.desc())
        )
    )


async def current_attempt(session: AsyncSession, rfc: str, now: dt.datetime) -> Certificacion | None:
    """The latest attempt still open: the sandbox serves its data."""
    c = Certificacion
    return await session.scalar(
        select(c).where(c.rfc == rfc, c.estado == "en_curso", c.expira_en > now).order_by(c.creada_en.desc()).limit(1)
    )


async def cancel_intento(session: AsyncSession, cert_id: uuid.UUID, rfc: str, now: dt.datetime) -> Certificacion:
    cert = await intento_of(session, cert_id, rfc, lock=True)
    if cert.estado != "cancelada":
        cert.estado, cert.cancelada_en = "cancelada", now
        await session.flush()
    return cert


def _require_open(cert: Certificacion, now: dt.datetime) -> None:
    if estado_de(cert, now) != "en_curso":
        raise Problem("intento_cerrado", f"El intento está {estado_de(cert, now)}; abra uno nuevo.")


def _with(cert: Certificacion, name: str, **changes: Any) -> None:
    # JSONB is replaced as a whole so SQLAlchemy sees the change.
    cert.escenarios = {**cert.escenarios, name: {**cert.escenarios[name], **changes}}


async def start_escenario(
    session: AsyncSession, cert_id: uuid.UUID, rfc: str, escenario: str, now: dt.datetime
) -> Certificacion:
    cert = await intento_of(session, cert_id, rfc, lock=True)
    _require_open(cert, now)
    if escenario == "sincronizacion_incremental":
        if cert.escenarios["descarga_completa"]["estado"] != "aprobado":
            raise Problem("escenario_previo_pendiente", "Primero apruebe descarga_completa.")
        if "inicio" in cert.escenarios[escenario]:
            raise Problem("escenario_iniciado", "Los avisos nuevos ya se publicaron para este intento.")
        rng = random.SystemRandom()
        # Set whenever an attempt is opened; only certifications granted without one lack them, and none is open.
        assert cert.sandbox_rfc is not None and cert.sandbox_nrps is not None
        employer = DemoPatron(cert.sandbox_rfc, "", tuple(cert.sandbox_nrps))
        existing = (
            await session.execute(select(func.count()).where(SandboxAviso.certificacion_id == cert.id))
        ).scalar_one()
        nuevos = list(demo_avisos([employer], rng.randint(5, 60), seed=rng.randrange(10**6), hasta=now.date()))
        # New folios beyond those of the attempt: the 8-digit counter continues.
        for n, aviso in enumerate(nuevos, start=existing + 1):
            aviso["folio"] = f"{now.year:04d}99{n:08d}"
        await _insert_avisos(session, cert.id, 1, nuevos)
        _with(cert, escenario, inicio=now.isoformat(), publicados=len(nuevos))
    elif escenario == "limite_de_tasa":
        _with(
            cert, escenario, inicio=now.isoformat(), retry_after=random.SystemRandom().randint(2, 4), disparado_en=None
        )
    else:
        raise Problem("escenario_sin_inicio", f"{escenario} no necesita inicio: solo descargue.")
    await session.flush()
    return cert


# ------------------------------------------------------------------ the sandbox's side


def ultimo_lote(cert: Certificacion) -> int:
    """The last lot of sandbox avisos the attempt published: 1 once the incremental scenario started."""
    return 1 if "inicio" in cert.escenarios["sincronizacion_incremental"] else 0


async def sandbox_replicado(replica: AsyncEngine, cert_id: uuid.UUID, lote: int) -> bool:
    """Whether a replica already holds the attempt's lot (each lot is one transaction: all of it or none)."""
    query = select(
        select(SandboxAviso.id).where(SandboxAviso.certificacion_id == cert_id, SandboxAviso.lote == lote).exists()
    )
    async with replica.connect() as conn:
        return bool(await conn.scalar(query))


async def trip_rate_limit(session: AsyncSession, cert: Certificacion, now: dt.datetime) -> int | None:
    """During limite_de_tasa, the first request after its start gets a 429: returns its Retry-After."""
    state = cert.escenarios.get("limite_de_tasa", {})
    if "inicio" in state and state.get("disparado_en") is None and state.get("estado") != "aprobado":
        _with(cert, "limite_de_tasa", disparado_en=now.isoformat())
        await session.flush()
        return int(state["retry_after"])
    return None


async def log_request(
    session: AsyncSession,
    cert_id: uuid.UUID,
    *,
    at: dt.datetime,
    status: int,
    params: dict,
    despues_de: str | None,
    entregados: int,
) -> None:
    session.add(
        SandboxSolicitud(
            certificacion_id=cert_id,
            recibida_en=at,
            estado_http=status,
            parametros=params,
            despues_de=despues_de,
            entregados=entregados,
        )
    )
    await session.flush()


# ------------------------------------------------------------------ judging


@dataclass(frozen=True)
class Veredicto:
    escenario: str
    aprobado: bool
    motivo: str


async def _folios(session: AsyncSession, cert_id: uuid.UUID, *conditions: ColumnElement[bool]) -> list[str]:
    s = SandboxAviso
    return list(await session.scalars(select(s.folio).where(s.certificacion_id == cert_id, *conditions)))


def _compare(expected: list[str], total: int, digest: str) -> str | None:
    if total < len(expected):
        return f"faltan {len(expected) - total} avisos"
    if total > len(expected):
        return f"sobran {total - len(expected)} avisos"
    if digest.lower() != huella(expected):
        return "la huella no coincide: revise que cuente cada folio una sola vez y los ordene antes de la huella"
    return None


async def _log(session: AsyncSession, cert_id: uuid.UUID, since: dt.datetime | None = None) -> list[SandboxSolicitud]:
    s = SandboxSolicitud
    query = select(s).where(s.certificacion_id == cert_id)
    if since is not None:
        query = query.where(s.recibida_en >= since)
    return list(await session.scalars(query.order_by(s.id)))


async def _judge_descarga_completa(
    session: AsyncSession, cert: Certificacion, state: dict, total: int, digest: str
) -> str | None:
    return _compare(await _folios(session, cert.id, SandboxAviso.lote == 0), total, digest)


async def _judge_descarga_filtrada(
    session: AsyncSession, cert: Certificacion, state: dict, total: int, digest: str
) -> str | None:
    s, p = SandboxAviso, state["parametros"]
    expected = await _folios(
        session,
        cert.id,
        s.lote == 0,
        s.clase == p["clase"],
        s.fecha_emision >= dt.date.fromisoformat(p["emitidos_desde"]),
        s.fecha_emision <= dt.date.fromisoformat(p["emitidos_hasta"]),
    )
    used_filters = any(
        r.estado_http == 200
        and r.parametros.get("clase") == p["clase"]
        and r.parametros.get("emitidos_desde") == p["emitidos_desde"]
        and r.parametros.get("emitidos_hasta") == p["emitidos_hasta"]
        for r in await _log(session, cert.id)
    )
    return _compare(expected, total, digest) or (
        None if used_filters else "no pidió los filtros clase, emitidos_desde y emitidos_hasta del escenario"
    )


async def _judge_sincronizacion_incremental(
    session: AsyncSession, cert: Certificacion, state: dict, total: int, digest: str
) -> str | None:
    if "inicio" not in state:
        return "aún no llama a .../escenarios/sincronizacion_incremental/inicio"
    reason = _compare(await _folios(session, cert.id, SandboxAviso.lote == 1), total, digest)
    full = [r for r in await _log(session, cert.id, dt.datetime.fromisoformat(state["inicio"])) if r.despues_de is None]
    if reason is None and full:
        return (
            f"descargó de nuevo {sum(r.entregados for r in full)} avisos sin despues_de; "
            "pida solo lo nuevo con despues_de = el último folio que ya tiene"
        )
    return reason


async def _judge_limite_de_tasa(
    session: AsyncSession, cert: Certificacion, state: dict, total: int, digest: str
) -> str | None:
    if "inicio" not in state:
        return "aún no llama a .../escenarios/limite_de_tasa/inicio"
    if state.get("disparado_en") is None:
        return "no hubo solicitudes después del inicio del escenario, así que nunca recibió el 429"
    tripped = dt.datetime.fromisoformat(state["disparado_en"])
    after = [r for r in await _log(session, cert.id, tripped) if r.recibida_en > tripped]
    if not after:
        return "después del 429 no volvió a pedir avisos; reintente tras Retry-After y termine la descarga"
    waited = (after[0].recibida_en - tripped).total_seconds()
    if waited < state["retry_after"]:
        return f"reintentó a los {waited:.1f} s; Retry-After pedía {state['retry_after']} s"
    return _compare(await _folios(session, cert.id), total, digest)


# Each scenario's judge: the reason it fails, or None when it passes.
_JUDGES = {
    "descarga_completa": _judge_descarga_completa,
    "descarga_filtrada": _judge_descarga_filtrada,
    "sincronizacion_incremental": _judge_sincronizacion_incremental,
    "limite_de_tasa": _judge_limite_de_tasa,
}


async def _approve_when_all_passed(
    session: AsyncSession, keys: Keys, settings: Settings, cert: Certificacion, now: dt.datetime
) -> None:
    if any(cert.escenarios[e]["estado"] != "aprobado" for e in ESCENARIOS):
        return
    cert.estado, cert.aprobada_en = "aprobada", now
    cert.vigente_hasta = now + dt.timedelta(days=settings.certificacion_vigencia_dias)
    acuse = await acuses.issue_acuse(
        session,
        keys.sellos,
        tipo="certificacion.aprobacion",
        partes=[cert.rfc],
        datos={"certificacion_id": str(cert.id), "rfc": cert.rfc, "vigente_hasta": cert.vigente_hasta.isoformat()},
        now=now,
    )
    cert.folio_acuse = acuse.folio


async def judge(
    session: AsyncSession,
    keys: Keys,
    settings: Settings,
    cert_id: uuid.UUID,
    rfc: str,
    escenario: str,
    total: int,
    digest: str,
    now: dt.datetime,
) -> tuple[Certificacion, Veredicto]:
    cert = await intento_of(session, cert_id, rfc, lock=True)
    _require_open(cert, now)
    reason = await _JUDGES[escenario](session, cert, cert.escenarios[escenario], total, digest)
    verdict = Veredicto(escenario, reason is None, reason or "aprobado")
    _with(cert, escenario, estado="aprobado" if verdict.aprobado else "reprobado", motivo=verdict.motivo)
    await _approve_when_all_passed(session, keys, settings, cert, now)
    await session.flush()
    return cert, verdict
