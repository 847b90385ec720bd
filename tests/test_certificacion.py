"""DESIGN §2 flow 4 end to end: the reference client earns a certification against a real server on
loopback, then reads production avisos; deliberately wrong clients fail each scenario with the right reason."""

import asyncio
import datetime as dt
import io
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pyotp
import pytest
from pypdf import PdfReader
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app import loaders
from app.db import async_url
from app.demo import demo_avisos, demo_patrones
from app.security import passwords, totp
from app.settings import DEV_TOTP_ENCRYPTION_KEY
from tests import factories as f
from tests.live import live_server
from tests.test_cliente import FakeTime

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients" / "python"))
from sia_cliente import ClienteSIA, huella

EMPLOYER = demo_patrones(1, seed=404)[0]
DEVELOPERS = [p.rfc for p in demo_patrones(8, seed=505)]
SIA = str(Path(sys.executable).with_name("sia"))


async def _seed(url: str) -> dict[str, tuple[str, str]]:
    engine = create_async_engine(async_url(url))
    with tempfile.TemporaryDirectory() as folder:
        async with engine.begin() as conn:
            await loaders.load_patrones(conn, f.write_patrones_csv(Path(folder) / "p.csv", [EMPLOYER]))
            records = list(demo_avisos([EMPLOYER], 120, seed=6, hasta=f.HASTA))
            await loaders.load_avisos(conn, f.write_ndjson(Path(folder) / "a.ndjson", records), today=f.TODAY)
    secrets_by_rfc = {}
    async with engine.begin() as conn:
        for rfc in [EMPLOYER.rfc, *DEVELOPERS]:
            password, secret = f"clave-{rfc}-de-prueba-larga", pyotp.random_base32()
            await conn.execute(
                text(
                    "INSERT INTO credencial (id, rfc, correo, hash_contrasena, totp_cifrado, estado, "
                    "certificado_numero, creada_en) VALUES (:id, :rfc, 'x@y.mx', :hash, :totp, 'activa', '1', now())"
                ),
                {
                    "id": uuid.uuid4(),
                    "rfc": rfc,
                    "hash": await passwords.hash_password(password),
                    "totp": totp.encrypt(secret, DEV_TOTP_ENCRYPTION_KEY),
                },
            )
            secrets_by_rfc[rfc] = (password, secret)
    await engine.dispose()
    return secrets_by_rfc


@pytest.fixture(scope="module")
def service(new_database, tmp_path_factory):
    url = new_database()
    credentials = asyncio.run(_seed(url))
    with live_server(url, tmp_path_factory.mktemp("srv")) as base:
        yield base, url, credentials


def client_for(service, rfc: str, **options) -> ClienteSIA:
    base, _, credentials = service
    password, secret = credentials[rfc]
    return ClienteSIA(base, rfc, password, secret, **options)


def _sql(url: str, statement: str, **params) -> list:
    async def run():
        engine = create_async_engine(async_url(url))
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            rows = result.all() if result.returns_rows else []
        await engine.dispose()
        return rows

    return asyncio.run(run())


def test_reference_client_certifies_then_syncs_production_avisos(service, tmp_path):
    _, url, _ = service
    developer = client_for(service, DEVELOPERS[0])
    uncertified = developer.pedir("GET", "/v1/avisos", params={"rfc_patron": EMPLOYER.rfc})
    assert uncertified.status_code == 403 and uncertified.json()["code"] == "sin_certificacion"

    result = developer.certificar()
    certification = result["certificacion"]
    assert result["aprobado"] is True, result
    assert certification["estado"] == "aprobada" and certification["folio_acuse"]
    assert all(e["estado"] == "aprobado" for e in certification["escenarios"]), certification["escenarios"]
    acuse = developer.pedir("GET", f"/v1/acuses/{certification['folio_acuse']}").json()
    assert acuse["tipo"] == "certificacion.aprobacion"
    pdf = developer.pedir("GET", f"/v1/acuses/{certification['folio_acuse']}", headers={"Accept": "application/pdf"})
    text_of_pdf = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Acuse de certificación" in text_of_pdf and developer.rfc in text_of_pdf

    employer = client_for(service, EMPLOYER.rfc)
    now = dt.datetime.now(dt.UTC)
    granted = employer.pedir(
        "POST",
        "/v1/relaciones-confianza",
        json={
            "rfc_desarrollador": developer.rfc,
            "vigencia_inicio": now.isoformat(),
            "vigencia_fin": (now + dt.timedelta(days=30)).isoformat(),
        },
    )
    assert granted.status_code == 201, granted.text

    local = tmp_path / "avisos.ndjson"
    assert developer.sincronizar(local, EMPLOYER.rfc, limite=50) == 120
    assert developer.sincronizar(local, EMPLOYER.rfc) == 0, "nothing new"
    with local.open("ab") as out:
        out.write(b'{"folio": "2026CORTADO')  # a crash in the middle of a line
    with tempfile.TemporaryDirectory() as folder:
        new = list(demo_avisos([EMPLOYER], 7, seed=8, hasta=f.HASTA))
        asyncio.run(_load(url, f.write_ndjson(Path(folder) / "n.ndjson", new)))
    assert developer.sincronizar(local, EMPLOYER.rfc) == 7
    folios = [json.loads(line)["folio"] for line in local.read_text(encoding="utf-8").splitlines()]
    assert len(folios) == len(set(folios)) == 127

    cancelled = developer.pedir("DELETE", f"/v1/certificaciones/{certification['id']}")
    assert cancelled.json()["estado"] == "cancelada"
    after = developer.pedir("GET", "/v1/avisos", params={"rfc_patron": EMPLOYER.rfc})
    assert after.status_code == 403 and after.json()["code"] == "sin_certificacion", "on the very next request"


async def _load(url: str, path: Path) -> None:
    engine = create_async_engine(async_url(url))
    async with engine.begin() as conn:
        await loaders.load_avisos(conn, path, today=f.TODAY)
    await engine.dispose()


def test_an_expired_certification_stops_production_reads(service):
    _, url, _ = service
    developer = client_for(service, DEVELOPERS[1])
    assert developer.certificar()["certificacion"]["estado"] == "aprobada"
    own_sandbox = developer.pedir("GET", "/v1/avisos", params={"rfc_patron": EMPLOYER.rfc})
    assert own_sandbox.json()["code"] == "sin_autorizacion", "certified, but no relationship with this employer"
    _sql(url, "UPDATE certificacion SET vigente_hasta = now() - interval '1 second' WHERE rfc = :r", r=developer.rfc)
    expired = developer.pedir("GET", "/v1/avisos", params={"rfc_patron": EMPLOYER.rfc})
    assert expired.json()["code"] == "sin_certificacion"


def _open(client: ClienteSIA) -> dict:
    response = client.pedir("POST", "/v1/certificaciones")
    assert response.status_code == 201, response.text
    return response.json()


def _submit(client: ClienteSIA, cid: str, escenario: str, folios: list[str], digest: str | None = None) -> dict:
    body = {"escenario": escenario, "total": len(folios), "huella": digest or huella(folios)}
    return client.pedir("POST", f"/v1/certificaciones/{cid}/evidencias", json=body).json()


def test_a_client_that_stops_after_the_first_page_fails(service):
    client = client_for(service, DEVELOPERS[2])
    attempt = _open(client)
    first_page = next(client.paginas("/sandbox/v1", limite=500))
    verdict = _submit(client, attempt["id"], "descarga_completa", [a["folio"] for a in first_page])
    assert verdict["aprobado"] is False and verdict["motivo"].startswith("faltan ")
    missing = int(verdict["motivo"].split()[1])
    assert missing > 1000, "an attempt has between 2,000 and 8,000 avisos"


def test_a_made_up_digest_fails(service):
    client = client_for(service, DEVELOPERS[3])
    attempt = _open(client)
    folios = [a["folio"] for page in client.paginas("/sandbox/v1", limite=500) for a in page]
    verdict = _submit(client, attempt["id"], "descarga_completa", folios, digest="0" * 64)
    assert verdict["aprobado"] is False and "huella no coincide" in verdict["motivo"]


def test_re_downloading_everything_in_the_incremental_scenario_fails(service):
    client = client_for(service, DEVELOPERS[4])
    attempt = _open(client)
    folios = [a["folio"] for page in client.paginas("/sandbox/v1", limite=500) for a in page]
    assert _submit(client, attempt["id"], "descarga_completa", folios)["aprobado"] is True
    client.pedir("POST", f"/v1/certificaciones/{attempt['id']}/escenarios/sincronizacion_incremental/inicio")
    everything = [a["folio"] for page in client.paginas("/sandbox/v1", limite=500) for a in page]  # no despues_de
    new = sorted(set(everything) - set(folios))
    verdict = _submit(client, attempt["id"], "sincronizacion_incremental", new)
    assert verdict["aprobado"] is False and "descargó de nuevo" in verdict["motivo"], verdict


def test_a_client_that_ignores_retry_after_fails(service):
    client = client_for(service, DEVELOPERS[5])
    attempt = _open(client)
    client.pedir("POST", f"/v1/certificaciones/{attempt['id']}/escenarios/limite_de_tasa/inicio")
    headers = {"Authorization": f"Bearer {client.token()}"}
    folios, cursor, refused = [], None, None
    while True:  # an impatient loop: on 429 it asks again at once
        params = {"limite": 500} | ({"despues_de": cursor} if cursor else {})
        response = client.http.get("/sandbox/v1/avisos", params=params, headers=headers)
        if response.status_code == 429:
            refused = int(response.headers["retry-after"])
            continue
        page = response.json()
        folios += [a["folio"] for a in page["avisos"]]
        if not page["hay_mas"]:
            break
        cursor = page["avisos"][-1]["folio"]
    assert refused is not None
    verdict = _submit(client, attempt["id"], "limite_de_tasa", folios)
    assert verdict["aprobado"] is False
    assert f"Retry-After pedía {refused} s" in verdict["motivo"] and verdict["motivo"].startswith("reintentó a los 0.")


def test_sandbox_and_production_never_mix(service):
    _, url, _ = service
    client = client_for(service, DEVELOPERS[6])
    attempt = _open(client)
    sandbox_rfc = attempt["sandbox"]["rfc_patron"]
    production = client.pedir("GET", "/v1/avisos", params={"rfc_patron": sandbox_rfc})
    assert production.status_code == 403
    outside = client.pedir("GET", "/sandbox/v1/avisos", params={"rfc_patron": EMPLOYER.rfc})
    assert outside.status_code == 403 and outside.json()["code"] == "sin_autorizacion"
    capped = client.pedir("GET", "/sandbox/v1/avisos", params={"limite": 5000}).json()
    assert len(capped["avisos"]) == 500 and capped["hay_mas"] is True, "the sandbox caps pages at 500"
    beyond = client.pedir("GET", "/sandbox/v1/avisos", params={"limite": 10_001})
    assert beyond.json()["code"] == "limite_fuera_de_rango", "above production's maximum it refuses, as production"
    ndjson = client.pedir("GET", "/sandbox/v1/avisos.ndjson", params={"limite": 3})
    assert ndjson.headers["content-type"] == "application/x-ndjson" and len(ndjson.content.splitlines()) == 3 + 1
    [sandbox_folio] = [a["folio"] for a in next(client.paginas("/sandbox/v1", limite=1))[:1]]
    assert client.pedir("GET", f"/sandbox/v1/avisos/{sandbox_folio}").status_code == 200
    assert client.pedir("GET", f"/v1/avisos/{sandbox_folio}").status_code in (403, 404)
    counts = _sql(url, "SELECT count(*) FROM aviso WHERE rfc_patron = :r", r=sandbox_rfc)
    assert counts[0][0] == 0, "no sandbox row in the production table"


def test_reference_client_takes_the_next_code_when_another_process_used_this_one(service):
    """The guide's curl, or the previous run, may have used this step's TOTP code with the same secret: the
    client's first token request is then 401, and it tries once more with the next code instead of failing.
    The clients' clock stands still (sleeping moves it on): both first requests meet the same step, and the next
    step's code is sent at once, which the real service accepts (one step of drift) after the used one."""
    clock = FakeTime(time.time())
    first, second = (client_for(service, DEVELOPERS[7], reloj=clock.time, dormir=clock.sleep) for _ in range(2))
    step = int(clock.now // 30)
    assert first.token()
    assert not clock.slept, "a fresh client sends this step's code"
    assert second.token()
    # Only a refused code makes a fresh client ask again, and only a step it already used makes it sleep.
    assert len(clock.slept) == 1 and int(clock.now // 30) == step + 1, "it waited for the next code"
    assert second.pedir("GET", "/v1/relaciones-confianza").status_code == 200
