"""authorize() reads one SQL statement (confianza.access_statement) for the caller's credential, certification
and trust relationships, and the lean path's page statement (avisos.sql.lean_page) embeds it. Their verdicts
are compared here with the rules as the rest of the code states them
(the ORM rows, estado_de(), is_certified(), the credential check of current_caller) over generated scenarios:
relationships in force, scheduled, expired or revoked, all NRPs or some, the caller's own RFC, certified,
in the sandbox only, expired or cancelled certifications, active, renewed or cancelled credentials."""

import datetime as dt
import random
import uuid
from dataclasses import dataclass

from sqlalchemy import exists, select

from app.avisos import sql as avisos_sql
from app.confianza import Autorizacion, Denegacion, authorize, estado_de, is_certified, verdict
from app.models import Acuse, Certificacion, Credencial, Nrp, Patron, RelacionConfianza

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
WINDOWS = {  # relationship state at NOW -> (vigencia_inicio, vigencia_fin, revocada_en)
    "vigente": (NOW - HOUR, NOW + HOUR, None),
    "programada": (NOW + HOUR, NOW + 2 * HOUR, None),
    "vencida": (NOW - 2 * HOUR, NOW - HOUR, None),
    "revocada": (NOW - HOUR, NOW + HOUR, NOW - HOUR / 2),
    "empieza_ahora": (NOW, NOW + HOUR, None),
    "acaba_ahora": (NOW - HOUR, NOW, None),
}
CERTIFICATIONS = {  # None: no certification at all
    "aprobada": ("aprobada", NOW + HOUR),
    "aprobada_vencida": ("aprobada", NOW - HOUR),
    "aprobada_acaba_ahora": ("aprobada", NOW),
    "sandbox": ("en_curso", None),
    "cancelada": ("cancelada", NOW + HOUR),
    "ninguna": None,
}
# Weighted towards the ones that let the question reach the relationships, so every verdict is reached often.
CREDENTIALS = {"activa": 10, "no_se_pregunta": 3, "renovada": 1, "cancelada": 1, "de_otro_rfc": 1, "inexistente": 1}
CERTIFICATION_WEIGHTS = {"aprobada": 12, "aprobada_vencida": 1, "aprobada_acaba_ahora": 1, "sandbox": 1, "cancelada": 1}


@dataclass
class Scenario:
    caller: str
    patron: str
    credencial_id: uuid.UUID | None
    nrps: list[str] | None


def _rfc(kind: str, i: int) -> str:
    return f"{kind}{i:011d}"[:13]


async def _build(session, rng: random.Random, i: int, acuse: str) -> Scenario:
    patron = _rfc("P", i)
    own_nrps = [f"{chr(65 + i % 26)}{i:07d}{k}00" for k in range(3)]
    registered = rng.random() < 0.9
    if registered:
        session.add(Patron(rfc=patron, razon_social=f"Patrón {i}"))
        await session.flush()
        session.add_all([Nrp(nrp=n, rfc_patron=patron) for n in own_nrps])
    caller = patron if rng.random() < 0.2 else _rfc("D", i)

    credential = rng.choices(list(CREDENTIALS), weights=list(CREDENTIALS.values()))[0]
    credencial_id = None if credential == "no_se_pregunta" else uuid.uuid4()
    if credential in ("activa", "renovada", "cancelada", "de_otro_rfc"):
        owner = _rfc("X", i) if credential == "de_otro_rfc" else caller
        estado = "activa" if credential == "de_otro_rfc" else credential
        session.add(
            Credencial(
                id=credencial_id,
                rfc=owner,
                correo="x@sia",
                hash_contrasena="-",
                totp_cifrado=b"-",
                estado=estado,
                certificado_numero="0",
                creada_en=NOW - HOUR,
            )
        )

    weights = [CERTIFICATION_WEIGHTS.get(name, 1) for name in CERTIFICATIONS]
    certification = CERTIFICATIONS[rng.choices(list(CERTIFICATIONS), weights=weights)[0]]
    if certification is not None:
        estado, hasta = certification
        session.add(
            Certificacion(id=uuid.uuid4(), rfc=caller, estado=estado, creada_en=NOW - HOUR, vigente_hasta=hasta)
        )

    if registered and patron != caller:
        await session.flush()  # the patron row first: relationships refer to it
        for _ in range(rng.randint(0, 3)):
            inicio, fin, revocada = WINDOWS[rng.choice(list(WINDOWS))]
            covered = None if rng.random() < 0.3 else sorted(rng.sample(own_nrps, rng.randint(1, 2)))
            session.add(
                RelacionConfianza(
                    id=uuid.uuid4(),
                    rfc_patron=patron,
                    rfc_desarrollador=caller,
                    nrps=covered,
                    vigencia_inicio=inicio,
                    vigencia_fin=fin,
                    revocada_en=revocada,
                    creada_en=NOW - 3 * HOUR,
                    folio_acuse=acuse,
                )
            )
    asked = rng.choice([None, None, sorted(rng.sample(own_nrps, rng.randint(1, 3))), [own_nrps[0], "Z9999999999"]])
    await session.flush()
    return Scenario(caller, patron, credencial_id, asked)


async def _as_the_rules_say(session, s: Scenario) -> Autorizacion | Denegacion:
    """The same question answered from ORM rows and the rules' own Python (estado_de, is_certified)."""
    if s.credencial_id is not None:
        c = Credencial
        active = await session.scalar(
            select(exists().where(c.id == s.credencial_id, c.rfc == s.caller, c.estado == "activa"))
        )
        if not active:
            return Denegacion("credencial_no_vigente")
    if not await is_certified(session, s.caller, NOW):
        return Denegacion("sin_certificacion")
    if await session.get(Patron, s.patron) is None:
        return Denegacion("sin_relacion")
    if s.caller == s.patron:
        return Autorizacion(nrps=s.nrps, relaciones=[])
    r = RelacionConfianza
    rows = await session.scalars(select(r).where(r.rfc_patron == s.patron, r.rfc_desarrollador == s.caller))
    in_force = [rel for rel in rows if estado_de(rel, NOW) == "vigente"]
    if not in_force:
        return Denegacion("sin_relacion")
    ids = sorted(rel.id for rel in in_force)
    if any(rel.nrps is None for rel in in_force):
        return Autorizacion(nrps=s.nrps, relaciones=ids)
    readable = sorted({n for rel in in_force for n in rel.nrps or []})
    if s.nrps is not None and not set(s.nrps) <= set(readable):
        return Denegacion("sin_relacion")
    return Autorizacion(nrps=s.nrps if s.nrps is not None else readable, relaciones=ids, legibles=readable)


class _Prepared:
    """A connection's fetchrow, for lean_page, through one prepared statement."""

    def __init__(self, statement) -> None:
        self.statement = statement

    async def fetchrow(self, _query: str, *args):
        return await self.statement.fetchrow(*args)


async def test_the_statement_agrees_with_the_rules_over_generated_scenarios(session):
    rng = random.Random(14)  # reproducible scenarios
    acuse = "ACU-20261124-0000000001"
    session.add(
        Acuse(folio=acuse, tipo="relacion.creacion", emitido_en=NOW, partes=[], datos={}, cadena_original="", sello="")
    )
    await session.flush()
    verdicts: dict[str, int] = {}
    driver = (await (await session.connection()).get_raw_connection()).driver_connection
    # Prepared once: SQLAlchemy's driver connections keep no statement cache of their own (the lean path's pool does).
    prepared = _Prepared(await driver.prepare(avisos_sql.LEAN_PAGE_SQL))
    for i in range(400):
        scenario = await _build(session, rng, i, acuse)
        got = await authorize(
            session, scenario.caller, scenario.patron, scenario.nrps, NOW, credencial_id=scenario.credencial_id
        )
        expected = await _as_the_rules_say(session, scenario)
        # The lean path's one statement embeds the same rule: the same verdict from its row, in the same
        # transaction (the scenarios are not committed).
        lean = await avisos_sql.lean_page(
            prepared,
            rfc=scenario.caller,
            credencial_id=scenario.credencial_id,
            patron=scenario.patron,
            nrps=scenario.nrps,
            despues_de=None,
            filas=11,
            at=NOW,
        )
        assert verdict(lean.acceso) == got, scenario
        if isinstance(got, Autorizacion):
            got = Autorizacion(got.nrps, sorted(got.relaciones), got.legibles)
        assert got == expected, scenario
        kind = got.motivo if isinstance(got, Denegacion) else ("propio" if not got.relaciones else "relacion")
        verdicts[kind] = verdicts.get(kind, 0) + 1
    # The scenarios reach every verdict, each many times: a generator stuck on one answer would prove nothing.
    assert set(verdicts) == {"credencial_no_vigente", "sin_certificacion", "sin_relacion", "propio", "relacion"}
    assert min(verdicts.values()) >= 15, verdicts
