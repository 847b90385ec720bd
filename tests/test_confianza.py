"""DESIGN §2 flow 3: trust relationships, the authorization function, PDF acuses, the audit view."""

import datetime as dt
import io
import uuid
from pathlib import Path

import pytest
import time_machine
from pypdf import PdfReader
from sqlalchemy import update

from app import portal
from app.confianza import Autorizacion, Denegacion, authorize, is_certified
from app.demo import demo_patrones
from app.models import Certificacion, Credencial, Nrp, Patron
from app.security import tokens
from app.security.keys import load_keys

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
DEV, OTHER_DEV = "XIQB891116QE4", "GODE561231GR8"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


@pytest.fixture
def app_settings(settings, tmp_path):
    return settings.model_copy(update={"data_dir": tmp_path})


@pytest.fixture
def employers():
    return demo_patrones(2)


@pytest.fixture
async def world(session, employers, app_settings):
    """Two employers in the registry; RFCs with credentials; a token maker."""
    for p in employers:
        session.add(Patron(rfc=p.rfc, razon_social=p.razon_social))
        await session.flush()
        session.add_all(Nrp(nrp=n, rfc_patron=p.rfc) for n in p.nrps)
    await session.flush()
    keys = load_keys(app_settings)

    async def login(rfc: str, nombre: str = "DESARROLLOS DEMO") -> dict[str, str]:
        credential = Credencial(
            id=uuid.uuid4(),
            rfc=rfc,
            correo="x@y.mx",
            nombre=nombre,
            hash_contrasena="-",
            totp_cifrado=b"-",
            estado="activa",
            certificado_numero="1",
            creada_en=NOW,
        )
        session.add(credential)
        await session.flush()
        token = tokens.issue_access_token(
            keys.tokens,
            sub=rfc,
            credencial_id=credential.id,
            issuer=app_settings.token_issuer,
            audience=app_settings.token_audience,
            ttl=dt.timedelta(days=400),
            now=dt.datetime.now(dt.UTC),
        )
        return {"Authorization": f"Bearer {token}"}

    return login


async def certify(session, rfc: str, until: dt.datetime = NOW + dt.timedelta(days=365)) -> Certificacion:
    cert = Certificacion(
        id=uuid.uuid4(), rfc=rfc, estado="aprobada", creada_en=NOW, aprobada_en=NOW, vigente_hasta=until
    )
    session.add(cert)
    await session.flush()
    return cert


def _body(rfc=DEV, nrps=None, inicio=NOW, fin=NOW + dt.timedelta(days=365)) -> dict:
    body = {"rfc_desarrollador": rfc, "vigencia_inicio": inicio.isoformat(), "vigencia_fin": fin.isoformat()}
    return body | ({"nrps": nrps} if nrps is not None else {})


@pytest.fixture
async def parties(world, session, employers):
    a, _ = employers
    patron = await world(a.rfc, a.razon_social)
    developer = await world(DEV)
    await certify(session, DEV)
    return patron, developer


# ------------------------------------------------------------------ creation rules


async def test_create_gives_a_vigente_relationship_with_an_acuse_both_parties_see(client, parties, employers, world):
    patron, developer = parties
    response = await client.post("/v1/relaciones-confianza", json=_body(), headers=patron)
    assert response.status_code == 201, response.text
    relation = response.json()
    assert relation["estado"] == "vigente" and relation["nrps"] is None and relation["rfc_patron"] == employers[0].rfc
    for who in (patron, developer):
        acuse = await client.get(f"/v1/acuses/{relation['folio_acuse']}", headers=who)
        assert acuse.status_code == 200 and acuse.json()["tipo"] == "relacion.creacion"
        assert (await client.get(f"/v1/relaciones-confianza/{relation['id']}", headers=who)).status_code == 200
    outsider = await world("SAT970701NN3")
    assert (await client.get(f"/v1/relaciones-confianza/{relation['id']}", headers=outsider)).status_code == 404
    assert (await client.get(f"/v1/relaciones-confianza/{uuid.uuid4()}", headers=outsider)).status_code == 404
    assert (await client.get(f"/v1/acuses/{relation['folio_acuse']}", headers=outsider)).status_code == 404


async def test_an_employer_reads_its_own_nrps_to_name_them(client, parties, employers):
    patron, developer = parties
    mine = await client.get("/v1/patron", headers=patron)
    assert mine.status_code == 200
    assert mine.json() == {
        "rfc": employers[0].rfc,
        "razon_social": employers[0].razon_social,
        "nrps": sorted(employers[0].nrps),
    }
    not_an_employer = await client.get("/v1/patron", headers=developer)
    assert not_an_employer.status_code == 403 and not_an_employer.json()["code"] == "no_es_patron"
    assert (await client.get("/v1/patron")).status_code == 401


async def test_caller_must_be_an_employer(client, parties):
    _, developer = parties
    response = await client.post("/v1/relaciones-confianza", json=_body(rfc=OTHER_DEV), headers=developer)
    assert response.status_code == 403 and response.json()["code"] == "no_es_patron"


async def test_developer_needs_a_credential_and_a_certification(client, parties, world, session):
    patron, _ = parties
    no_credential = await client.post("/v1/relaciones-confianza", json=_body(rfc=OTHER_DEV), headers=patron)
    assert no_credential.json()["code"] == "desarrollador_sin_contrasena"
    await world(OTHER_DEV)
    uncertified = await client.post("/v1/relaciones-confianza", json=_body(rfc=OTHER_DEV), headers=patron)
    assert uncertified.status_code == 422 and uncertified.json()["code"] == "desarrollador_no_certificado"
    await certify(session, OTHER_DEV, until=NOW - dt.timedelta(days=1))
    expired = await client.post("/v1/relaciones-confianza", json=_body(rfc=OTHER_DEV), headers=patron)
    assert expired.json()["code"] == "desarrollador_no_certificado"


async def test_nrps_must_be_the_employers_own(client, parties, employers):
    patron, _ = parties
    foreign = employers[1].nrps[0]
    response = await client.post(
        "/v1/relaciones-confianza", json=_body(nrps=[employers[0].nrps[0], foreign]), headers=patron
    )
    assert response.status_code == 422 and response.json()["code"] == "nrp_ajeno"
    assert response.json()["nrps"] == [foreign]


async def test_validity_window_rules(client, parties):
    patron, _ = parties
    past = await client.post("/v1/relaciones-confianza", json=_body(inicio=NOW - dt.timedelta(days=1)), headers=patron)
    assert past.json()["code"] == "vigencia_en_el_pasado"
    backwards = await client.post(
        "/v1/relaciones-confianza", json=_body(fin=NOW - dt.timedelta(seconds=1)), headers=patron
    )
    assert backwards.json()["code"] == "vigencia_invalida"
    naive = {**_body(), "vigencia_inicio": "2026-11-24T06:05:00", "vigencia_fin": "2027-01-01T00:00:00"}
    created = await client.post("/v1/relaciones-confianza", json=naive, headers=patron)
    assert created.status_code == 201
    start = dt.datetime.fromisoformat(created.json()["vigencia_inicio"])
    assert start == NOW + dt.timedelta(minutes=5), "a time without zone is Mexico City's"


async def test_without_a_start_the_relationship_holds_from_now(client, parties, clock):
    patron, _ = parties
    body = {"rfc_desarrollador": DEV, "vigencia_fin": (NOW + dt.timedelta(days=30)).isoformat()}
    created = await client.post("/v1/relaciones-confianza", json=body, headers=patron)
    assert created.status_code == 201 and created.json()["estado"] == "vigente"
    start = dt.datetime.fromisoformat(created.json()["vigencia_inicio"])
    assert abs(start - NOW) < dt.timedelta(seconds=5)


async def test_both_ends_of_the_window_are_whole_seconds_in_utc(client, parties, clock):
    """An omitted start is "now", which carries microseconds; a sent end may carry a fraction and an offset. A
    person reads both ends, in the relación and in its acuse, with the same precision: whole seconds, UTC."""
    patron, _ = parties
    clock.move_to(NOW + dt.timedelta(microseconds=100_000))  # "now" has a fraction, well under 1 s
    body = {"rfc_desarrollador": DEV, "vigencia_fin": "2027-11-24T06:00:00.987654-06:00"}
    created = await client.post("/v1/relaciones-confianza", json=body, headers=patron)
    assert created.status_code == 201, created.text
    relation = created.json()
    read = (await client.get(f"/v1/relaciones-confianza/{relation['id']}", headers=patron)).json()
    acuse = (await client.get(f"/v1/acuses/{relation['folio_acuse']}", headers=patron)).json()
    for end, expected in (("vigencia_inicio", NOW), ("vigencia_fin", NOW + dt.timedelta(days=365))):
        assert relation[end] == read[end] == expected.isoformat().replace("+00:00", "Z"), (end, relation, read)
        assert acuse["datos"][end] == expected.isoformat(), acuse["datos"]
        assert f"{end}={expected.isoformat()}" in acuse["cadena_original"]


async def test_overlapping_duplicate_is_409_and_disjoint_ones_are_fine(client, parties, employers):
    patron, _ = parties
    a = employers[0]
    first = await client.post("/v1/relaciones-confianza", json=_body(nrps=[a.nrps[0]]), headers=patron)
    assert first.status_code == 201
    same = await client.post("/v1/relaciones-confianza", json=_body(nrps=[a.nrps[0], a.nrps[1]]), headers=patron)
    assert same.status_code == 409 and same.json()["relacion_id"] == first.json()["id"]
    all_nrps = await client.post("/v1/relaciones-confianza", json=_body(), headers=patron)
    assert all_nrps.status_code == 409, "no NRPs = all of them, which overlaps"
    other_nrp = await client.post("/v1/relaciones-confianza", json=_body(nrps=[a.nrps[1]]), headers=patron)
    assert other_nrp.status_code == 201
    later = _body(nrps=[a.nrps[0]], inicio=NOW + dt.timedelta(days=400), fin=NOW + dt.timedelta(days=500))
    assert (await client.post("/v1/relaciones-confianza", json=later, headers=patron)).status_code == 201
    await client.delete(f"/v1/relaciones-confianza/{first.json()['id']}", headers=patron)
    again = await client.post("/v1/relaciones-confianza", json=_body(nrps=[a.nrps[0]]), headers=patron)
    assert again.status_code == 201, "a revoked relationship no longer blocks"


async def test_employer_may_name_itself(client, world, session, employers):
    a = employers[0]
    patron = await world(a.rfc, a.razon_social)
    await certify(session, a.rfc)
    response = await client.post("/v1/relaciones-confianza", json=_body(rfc=a.rfc), headers=patron)
    assert response.status_code == 201 and response.json()["rfc_desarrollador"] == a.rfc


# ------------------------------------------------------------------ estado, listing, revocation


async def test_estado_is_derived_from_the_clock(client, parties, clock):
    patron, developer = parties
    body = _body(inicio=NOW + dt.timedelta(days=1), fin=NOW + dt.timedelta(days=2))
    relation = (await client.post("/v1/relaciones-confianza", json=body, headers=patron)).json()
    assert relation["estado"] == "programada"
    url = f"/v1/relaciones-confianza/{relation['id']}"
    clock.shift(dt.timedelta(days=1, seconds=1))
    assert (await client.get(url, headers=developer)).json()["estado"] == "vigente"
    clock.shift(dt.timedelta(days=1))
    assert (await client.get(url, headers=developer)).json()["estado"] == "vencida"


async def test_listing_by_role_estado_and_pages(client, parties, employers, world, session):
    patron, developer = parties
    a = employers[0]
    ids = []
    for nrp in a.nrps:
        ids.append((await client.post("/v1/relaciones-confianza", json=_body(nrps=[nrp]), headers=patron)).json()["id"])
    await client.delete(f"/v1/relaciones-confianza/{ids[0]}", headers=patron)
    granted = (await client.get("/v1/relaciones-confianza", headers=patron)).json()
    received = (await client.get("/v1/relaciones-confianza?rol=desarrollador", headers=developer)).json()
    assert [r["id"] for r in granted["relaciones"]] == [r["id"] for r in received["relaciones"]] == ids
    assert (await client.get("/v1/relaciones-confianza?rol=desarrollador", headers=patron)).json()["relaciones"] == []
    revoked = (await client.get("/v1/relaciones-confianza?estado=revocada", headers=developer)).json()
    assert [r["id"] for r in revoked["relaciones"]] == [ids[0]]
    pages, cursor = [], None
    while True:
        url = "/v1/relaciones-confianza?limite=1" + (f"&despues_de={cursor}" if cursor else "")
        page = (await client.get(url, headers=patron)).json()
        pages += [r["id"] for r in page["relaciones"]]
        if not page["hay_mas"]:
            break
        cursor = page["siguiente"]
    assert pages == ids
    outsider = await world("SAT970701NN3")
    bad_cursor = await client.get(f"/v1/relaciones-confianza?despues_de={ids[0]}", headers=outsider)
    assert bad_cursor.status_code == 422 and bad_cursor.json()["code"] == "cursor_invalido"
    assert (await client.get("/v1/relaciones-confianza?estado=rara", headers=patron)).status_code == 422


async def test_revocation_rules_and_idempotence(client, parties, world):
    patron, developer = parties
    relation = (await client.post("/v1/relaciones-confianza", json=_body(), headers=patron)).json()
    url = f"/v1/relaciones-confianza/{relation['id']}"
    by_developer = await client.delete(url, headers=developer)
    assert by_developer.status_code == 403 and by_developer.json()["code"] == "solo_el_patron"
    outsider = await world("SAT970701NN3")
    assert (await client.delete(url, headers=outsider)).status_code == 404
    first = await client.delete(url, headers=patron)
    assert first.status_code == 200 and first.json()["estado"] == "revocada"
    second = await client.delete(url, headers=patron)
    assert second.json()["folio_acuse_revocacion"] == first.json()["folio_acuse_revocacion"]
    acuse = await client.get(f"/v1/acuses/{first.json()['folio_acuse_revocacion']}", headers=developer)
    assert acuse.json()["tipo"] == "relacion.revocacion"


# ------------------------------------------------------------------ the authorization function


async def test_authorization_follows_the_database_at_call_time(client, parties, employers, session, clock):
    patron, _ = parties
    a, b = employers
    relation = (await client.post("/v1/relaciones-confianza", json=_body(nrps=[a.nrps[0]]), headers=patron)).json()
    allowed = await authorize(session, DEV, a.rfc, None, dt.datetime.now(dt.UTC))
    assert allowed is not None and allowed.nrps == [a.nrps[0]] and allowed.relaciones == [uuid.UUID(relation["id"])]
    assert isinstance(await authorize(session, DEV, a.rfc, [a.nrps[0]], dt.datetime.now(dt.UTC)), Autorizacion)
    assert isinstance(await authorize(session, DEV, a.rfc, [a.nrps[1]], dt.datetime.now(dt.UTC)), Denegacion), (
        "NRP outside"
    )
    assert isinstance(await authorize(session, DEV, b.rfc, None, dt.datetime.now(dt.UTC)), Denegacion), (
        "another employer"
    )
    assert isinstance(await authorize(session, OTHER_DEV, a.rfc, None, dt.datetime.now(dt.UTC)), Denegacion), (
        "third party"
    )
    unknown = await authorize(session, DEV, "AAA010101AAA", None, dt.datetime.now(dt.UTC))
    assert (
        unknown == await authorize(session, DEV, b.rfc, None, dt.datetime.now(dt.UTC)) == Denegacion("sin_relacion")
    ), "an unknown employer and one without a relationship look the same"
    await client.delete(f"/v1/relaciones-confianza/{relation['id']}", headers=patron)
    assert isinstance(await authorize(session, DEV, a.rfc, None, dt.datetime.now(dt.UTC)), Denegacion), (
        "revocation is immediate"
    )


async def test_authorization_ends_with_the_window_and_the_certification(client, parties, employers, session, clock):
    patron, _ = parties
    a = employers[0]
    body = _body(inicio=NOW + dt.timedelta(hours=1), fin=NOW + dt.timedelta(days=30))
    await client.post("/v1/relaciones-confianza", json=body, headers=patron)
    assert isinstance(await authorize(session, DEV, a.rfc, None, dt.datetime.now(dt.UTC)), Denegacion), "programada"
    clock.shift(dt.timedelta(hours=2))
    assert (await authorize(session, DEV, a.rfc, None, dt.datetime.now(dt.UTC))).nrps is None, "vigente, all NRPs"
    clock.shift(dt.timedelta(days=30))
    assert isinstance(await authorize(session, DEV, a.rfc, None, dt.datetime.now(dt.UTC)), Denegacion), (
        "vencida, nobody touched it"
    )
    clock.shift(dt.timedelta(days=-29))
    await session.execute(update(Certificacion).where(Certificacion.rfc == DEV).values(estado="cancelada"))
    assert await authorize(session, DEV, a.rfc, None, dt.datetime.now(dt.UTC)) == Denegacion("sin_certificacion")


async def test_desarrollo_propio_needs_the_employer_certified(session, world, employers):
    a = employers[0]
    await world(a.rfc)
    assert isinstance(await authorize(session, a.rfc, a.rfc, None, NOW), Denegacion)
    await certify(session, a.rfc)
    own = await authorize(session, a.rfc, a.rfc, None, NOW)
    assert isinstance(own, Autorizacion) and own.nrps is None and own.relaciones == []


async def test_new_nrps_are_covered_when_none_were_named(client, parties, employers, session):
    patron, _ = parties
    a = employers[0]
    await client.post("/v1/relaciones-confianza", json=_body(), headers=patron)
    session.add(Nrp(nrp="Y9912345109", rfc_patron=a.rfc))
    await session.flush()
    assert isinstance(await authorize(session, DEV, a.rfc, ["Y9912345109"], NOW), Autorizacion)


# ------------------------------------------------------------------ acuses as PDF


async def test_relationship_acuse_as_pdf(client, parties, employers, world):
    patron, developer = parties
    relation = (
        await client.post("/v1/relaciones-confianza", json=_body(nrps=list(employers[0].nrps)), headers=patron)
    ).json()
    response = await client.get(
        f"/v1/acuses/{relation['folio_acuse']}", headers={**developer, "Accept": "application/pdf"}
    )
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    # Generated clients cannot choose Accept: the same PDF at {folio}.pdf, for the parties only.
    by_path = await client.get(f"/v1/acuses/{relation['folio_acuse']}.pdf", headers=developer)
    assert by_path.headers["content-type"] == "application/pdf" and by_path.content.startswith(b"%PDF")
    stranger = await client.get(f"/v1/acuses/{relation['folio_acuse']}.pdf", headers=await world(OTHER_DEV))
    assert stranger.status_code == 404 and stranger.json()["code"] == "acuse_no_encontrado"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "acuse-relacion.pdf").write_bytes(response.content)
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    for expected in (
        relation["folio_acuse"],
        employers[0].rfc,
        DEV,
        "Cadena original",
        "Sello digital",
        employers[0].nrps[0],
    ):
        assert expected in text, expected
    assert "hora del centro de México" in text and "24/11/2026 06:00" in text


async def test_qr_verification_url_verifies_without_personal_data(client, parties, app_settings):

    patron, _ = parties
    relation = (await client.post("/v1/relaciones-confianza", json=_body(), headers=patron)).json()
    folio = relation["folio_acuse"]
    acuse = (await client.get(f"/v1/acuses/{folio}", headers=patron)).json()
    url = f"/v1/acuses/{folio}/verificacion?sello={acuse['sello'][-24:]}"
    verified = await client.get(url)
    assert verified.status_code == 200 and verified.json()["valido"] is True
    assert set(verified.json()) == {"folio", "tipo", "emitido_en", "valido"}
    forged = await client.get(f"/v1/acuses/{folio}/verificacion?sello={'A' * 24}")
    assert forged.status_code == 404 and forged.json()["code"] == "acuse_no_verificable"
    assert (await client.get(f"/v1/acuses/{folio}/verificacion?sello=corto")).status_code == 422


# ------------------------------------------------------------------ audit view


async def test_audit_view_shows_relationship_events_to_the_employer_only(client, parties, employers, world):
    patron, developer = parties
    relation = (await client.post("/v1/relaciones-confianza", json=_body(), headers=patron)).json()
    await client.delete(f"/v1/relaciones-confianza/{relation['id']}", headers=patron)
    page = (await client.get("/v1/auditoria", headers=patron)).json()
    assert [e["accion"] for e in page["eventos"]] == ["relacion.revocada", "relacion.creada"]
    assert all(e["relacion_id"] == relation["id"] for e in page["eventos"])
    assert (await client.get("/v1/auditoria", headers=developer)).json()["code"] == "no_es_patron"
    first = (await client.get("/v1/auditoria?limite=1", headers=patron)).json()
    rest = (await client.get(f"/v1/auditoria?limite=1&antes_de={first['siguiente']}", headers=patron)).json()
    assert [e["accion"] for e in first["eventos"] + rest["eventos"]] == ["relacion.revocada", "relacion.creada"]
    assert not rest["hay_mas"]
    filtered = (await client.get(f"/v1/auditoria?desarrollador={DEV}", headers=patron)).json()
    assert filtered["eventos"] == [], "the actor of relationship events is the employer"
    window = await client.get("/v1/auditoria?desde=2026-11-25T00:00:00&hasta=2026-11-24T00:00:00", headers=patron)
    assert window.status_code == 422 and window.json()["code"] == "rango_invalido"


# ------------------------------------------------------------------ extreme input is a 422, never a 500


@pytest.mark.parametrize(
    "query",
    [
        "desde=9999-12-31T23:59:59",  # Mexico City's offset pushes it past datetime.max
        "hasta=9999-12-31T23:59:59-12:00",
        "desde=0001-01-01T00:00:00%2B14:00",  # before datetime.min once in UTC
        "hasta=0001-01-01T00:00:00",
        "desde=1899-12-31T23:59:59Z",
        f"antes_de={2**63}",  # above PostgreSQL's bigint
        f"antes_de={10**30}",
        "desarrollador=XIQB891116Q%00E",
    ],
)
async def test_audit_view_refuses_out_of_range_input(client, parties, query):
    patron, _ = parties
    response = await client.get(f"/v1/auditoria?{query}", headers=patron)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "solicitud_invalida"


async def test_audit_view_accepts_the_ends_of_the_range(client, parties):
    patron, _ = parties
    ends = "desde=1900-01-01T00:00:00-12:00&hasta=2199-12-31T23:59:59%2B14:00"
    assert (await client.get(f"/v1/auditoria?{ends}&antes_de={2**63 - 1}", headers=patron)).status_code == 200


@pytest.mark.parametrize(
    "field",
    [
        {"vigencia_fin": "9999-12-31T23:59:59"},
        {"vigencia_fin": "9999-12-31T00:00:00Z"},
        {"vigencia_fin": "2200-01-01T00:00:00Z"},
        {"vigencia_inicio": "0001-01-01T00:00:00+14:00"},
        {"rfc_desarrollador": "XIQB891116Q\x00E"},
        {"nrps": ["Y6067072\x0004"]},
    ],
)
async def test_relationship_refuses_out_of_range_input(client, parties, field):
    patron, _ = parties
    response = await client.post("/v1/relaciones-confianza", json={**_body(), **field}, headers=patron)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "solicitud_invalida"
    assert response.json()["errores"][0]["campo"].startswith(f"body.{next(iter(field))}")


async def test_relationship_until_the_end_of_the_range_is_accepted_and_stored_in_utc(client, parties):
    patron, _ = parties
    body = {**_body(), "vigencia_fin": "2199-12-31T23:59:59+14:00"}
    created = await client.post("/v1/relaciones-confianza", json=body, headers=patron)
    assert created.status_code == 201, created.text
    assert created.json()["vigencia_fin"] == "2199-12-31T09:59:59Z"


@pytest.mark.parametrize(
    ("estado", "vigente_hasta", "certified"),
    [
        ("aprobada", NOW + dt.timedelta(days=1), True),
        ("aprobada", NOW - dt.timedelta(seconds=1), False),
        ("aprobada", NOW, False),
        ("cancelada", NOW + dt.timedelta(days=1), False),
        ("en_curso", NOW + dt.timedelta(days=1), False),
    ],
)
async def test_every_reader_of_certified_agrees(session, world, employers, estado, vigente_hasta, certified):
    """Creating a relationship, reading avisos and the portal's developer card ask the same question; a rule
    restated in one of them (a cancelled certification still counted, an expiry compared with >=) fails here."""
    a = employers[0]
    await world(a.rfc)
    session.add(Certificacion(id=uuid.uuid4(), rfc=a.rfc, estado=estado, creada_en=NOW, vigente_hasta=vigente_hasta))
    await session.flush()
    assert await is_certified(session, a.rfc, NOW) is certified
    assert isinstance(await authorize(session, a.rfc, a.rfc, None, NOW), Autorizacion) is certified
    card = await portal.developer_card(session, a.rfc, NOW)
    assert card is not None and (card.certificado_hasta is not None) is certified
