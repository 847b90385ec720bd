"""DESIGN §2 flow 5 and §4 /v1/avisos against committed data: authorization for every kind of caller,
filters, cursor paging, NDJSON, long polling, audit (also on disconnect), rate limits."""

import asyncio
import datetime as dt
import re
import socket
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import orjson
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app import loaders, notify, publicacion
from app.avisos import reading
from app.avisos import sql as avisos_sql
from app.db import async_url
from app.demo import demo_avisos
from app.main import create_app
from app.models.aviso import CAMPOS_AVISO, CAMPOS_CARGA_AVISO
from app.routers.avisos import Aviso as AvisoSchema
from app.security.keys import load_keys
from tests import documented_problems
from tests import factories as f
from tests.avisos_world import CERTIFICACION, COUNTS, DEV, OTHER, A, B, bearer, certification, seed
from tests.live import live_server


@pytest.fixture(scope="module")
def seeded(new_database) -> str:
    url = new_database()
    seed(url)
    return url


@pytest.fixture
def db_url(new_database, seeded) -> str:
    return new_database(template=seeded)


@pytest.fixture
def app_settings(settings, db_url, tmp_path):
    live = settings.model_copy(update={"database_url": db_url, "data_dir": tmp_path})
    load_keys(live)  # the keys the test signs tokens with are the app's
    return live


@pytest.fixture
async def db(db_url):
    engine = create_async_engine(async_url(db_url))
    yield engine
    await engine.dispose()


@pytest.fixture
async def client(app_settings):
    """The real app on the test database: its own sessions, commits, LISTEN connection."""
    app = create_app(app_settings)
    async with LifespanManager(app) as manager:
        transport = httpx2.ASGITransport(app=manager.app, raise_app_exceptions=False)
        hooks = documented_problems.event_hooks()
        async with httpx2.AsyncClient(
            transport=transport, base_url="http://testserver", timeout=30, event_hooks=hooks
        ) as client:
            yield client


async def certify(db, rfc: str, **kwargs) -> None:
    async with db.begin() as conn:
        await conn.execute(CERTIFICACION.insert().values(**certification(rfc, **kwargs)))


async def relate(client, app_settings, *, nrps=None, inicio=None, fin=None, developer=DEV) -> dict:
    now = dt.datetime.now(dt.UTC)
    body = {
        "rfc_desarrollador": developer,
        "vigencia_inicio": (inicio or now).isoformat(),
        "vigencia_fin": (fin or now + dt.timedelta(days=30)).isoformat(),
    } | ({"nrps": nrps} if nrps else {})
    response = await client.post("/v1/relaciones-confianza", json=body, headers=bearer(app_settings, A.rfc))
    assert response.status_code == 201, response.text
    return response.json()


async def folios_in_order(db, rfc: str, where: str = "true") -> list[str]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text(f"SELECT folio FROM aviso WHERE rfc_patron = :r AND {where} ORDER BY seq"), {"r": rfc}
        )
        return [r[0] for r in rows]


async def page(client, who: dict, **params) -> dict:
    response = await client.get("/v1/avisos", params=params, headers=who)
    assert response.status_code == 200, response.text
    return response.json()


# ------------------------------------------------------------------ authorization


async def test_employer_reads_its_own_avisos_only_when_certified(client, app_settings, db):
    who = bearer(app_settings, A.rfc)
    uncertified = await client.get("/v1/avisos", headers=who)
    assert uncertified.status_code == 403 and uncertified.json()["code"] == "sin_certificacion"
    await certify(db, A.rfc)
    body = await page(client, who)
    assert [a["folio"] for a in body["avisos"]] == await folios_in_order(db, A.rfc)
    assert body["hay_mas"] is False and {a["rfc_patron"] for a in body["avisos"]} == {A.rfc}


@pytest.mark.parametrize(
    ("window", "allowed"),
    [("vigente", True), ("programada", False), ("vencida", False), ("revocada", False)],
)
async def test_developer_by_relationship_state(client, app_settings, db, window, allowed, time_machine):
    await certify(db, DEV)
    now = dt.datetime.now(dt.UTC)
    inicio = now + dt.timedelta(days=1) if window == "programada" else now
    relation = await relate(client, app_settings, inicio=inicio, fin=inicio + dt.timedelta(days=2))
    if window == "revocada":
        await client.delete(f"/v1/relaciones-confianza/{relation['id']}", headers=bearer(app_settings, A.rfc))
    if window == "vencida":
        time_machine.move_to(now + dt.timedelta(days=3), tick=True)
    response = await client.get("/v1/avisos", params={"rfc_patron": A.rfc}, headers=bearer(app_settings, DEV))
    if allowed:
        assert response.status_code == 200 and len(response.json()["avisos"]) == COUNTS[A.rfc]
    else:
        assert response.status_code == 403 and response.json()["code"] == "sin_autorizacion"


async def test_nrp_scope_of_the_relationship(client, app_settings, db):
    await certify(db, DEV)
    covered = A.nrps[0]
    await relate(client, app_settings, nrps=[covered])
    who = bearer(app_settings, DEV)
    scoped = await page(client, who, rfc_patron=A.rfc)
    assert {a["nrp"] for a in scoped["avisos"]} == {covered}
    assert [a["folio"] for a in scoped["avisos"]] == await folios_in_order(db, A.rfc, f"nrp = '{covered}'")
    outside = await client.get("/v1/avisos", params={"rfc_patron": A.rfc, "nrp": A.nrps[1]}, headers=who)
    assert outside.status_code == 403 and outside.json()["code"] == "sin_autorizacion"


async def test_third_party_learns_nothing(client, app_settings, db):
    await certify(db, OTHER)
    who = bearer(app_settings, OTHER)
    with_avisos = await client.get("/v1/avisos", params={"rfc_patron": A.rfc}, headers=who)
    unknown = await client.get("/v1/avisos", params={"rfc_patron": "SAT970701NN3"}, headers=who)
    assert with_avisos.status_code == unknown.status_code == 403
    assert with_avisos.json()["code"] == unknown.json()["code"] == "sin_autorizacion"
    assert with_avisos.json()["title"] == unknown.json()["title"]


async def test_a_developer_must_name_the_employer(client, app_settings, db):
    """Only an employer may omit rfc_patron (its own avisos): a developer who omits it is told so, not refused as
    if its own RFC were the employer it asked for."""
    await certify(db, DEV)
    await relate(client, app_settings)
    for certified in (True, False):
        if not certified:
            async with db.begin() as conn:
                await conn.execute(CERTIFICACION.delete().where(CERTIFICACION.c.rfc == DEV))
        response = await client.get("/v1/avisos", headers=bearer(app_settings, DEV))
        problem = response.json()
        assert response.status_code == 422 and problem["code"] == "rfc_patron_requerido", problem
        assert "rfc_patron" in problem["detail"] and DEV not in problem["detail"]
    named = await client.get("/v1/avisos", params={"rfc_patron": A.rfc}, headers=bearer(app_settings, DEV))
    assert named.status_code == 403 and named.json()["code"] == "sin_certificacion"


async def test_missing_token_is_401(client):
    response = await client.get("/v1/avisos")
    assert response.status_code == 401 and response.json()["code"] == "no_autenticado"


# ------------------------------------------------------------------ filters and validation


async def test_every_filter(client, app_settings, db):
    await certify(db, A.rfc)
    who = bearer(app_settings, A.rfc)
    async with db.connect() as conn:
        sample = (
            await conn.execute(text("SELECT nss, tipo_aviso FROM aviso WHERE rfc_patron = :r LIMIT 1"), {"r": A.rfc})
        ).one()
    cases = {
        "clase=suspension": ({"clase": "suspension"}, "clase = 'suspension'"),
        "tipo_aviso": ({"tipo_aviso": sample.tipo_aviso}, f"tipo_aviso = '{sample.tipo_aviso}'"),
        "nss": ({"nss": sample.nss}, f"nss = '{sample.nss}'"),
        "nrp": ({"nrp": [A.nrps[0], A.nrps[1]]}, f"nrp IN ('{A.nrps[0]}', '{A.nrps[1]}')"),
        "dates": (
            {"emitidos_desde": "2026-09-01", "emitidos_hasta": "2026-10-15"},
            "fecha_emision BETWEEN '2026-09-01' AND '2026-10-15'",
        ),
    }
    for name, (params, where) in cases.items():
        expected = await folios_in_order(db, A.rfc, where)
        assert expected, f"the data set exercises {name}"
        assert [a["folio"] for a in (await page(client, who, **params))["avisos"]] == expected, name


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"nss": "12345678900"}, "solicitud_invalida"),
        ({"clase": "otra"}, "solicitud_invalida"),
        ({"tipo_aviso": "99"}, "tipo_aviso_desconocido"),
        ({"emitidos_desde": "2026-10-02", "emitidos_hasta": "2026-10-01"}, "rango_invalido"),
        ({"emitidos_desde": "2026-02-30"}, "solicitud_invalida"),
        ({"emitidos_hasta": "0"}, "solicitud_invalida"),
        ({"emitidos_hasta": "1700000000"}, "solicitud_invalida"),
        ({"limite": 0}, "solicitud_invalida"),
        ({"limite": 10_001}, "limite_fuera_de_rango"),
        ({"despues_de": "20269999999999"}, "despues_de_desconocido"),
        ({"espera": 61}, "solicitud_invalida"),
        ({"nrp": "123"}, "solicitud_invalida"),
        ({"rfc_patron": "x' OR 1=1 --"}, "solicitud_invalida"),
    ],
)
async def test_bad_parameters_are_problems(client, app_settings, db, params, code):
    await certify(db, A.rfc)
    response = await client.get("/v1/avisos", params=params, headers=bearer(app_settings, A.rfc))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code


async def test_cursor_of_another_employer_is_unknown(client, app_settings, db):
    await certify(db, A.rfc)
    [b_folio, *_] = await folios_in_order(db, B.rfc)
    response = await client.get("/v1/avisos", params={"despues_de": b_folio}, headers=bearer(app_settings, A.rfc))
    assert response.json()["code"] == "despues_de_desconocido"


# ------------------------------------------------------------------ paging and formats


async def test_cursor_paging_returns_each_aviso_exactly_once(client, app_settings, db):
    await certify(db, A.rfc)
    who = bearer(app_settings, A.rfc)
    seen, cursor, pages = [], None, 0
    while True:
        body = await page(client, who, limite=7, **({"despues_de": cursor} if cursor else {}))
        pages += 1
        seen += [a["folio"] for a in body["avisos"]]
        if not body["hay_mas"]:
            break
        cursor = body["avisos"][-1]["folio"]
    assert seen == await folios_in_order(db, A.rfc) and pages == -(-COUNTS[A.rfc] // 7)
    assert (await page(client, who, despues_de=seen[-1]))["avisos"] == [], "an incremental sync with nothing new"


async def test_ndjson_and_json_give_the_same_avisos(client, app_settings, db):
    await certify(db, A.rfc)
    who = bearer(app_settings, A.rfc)
    as_json = (await page(client, who, limite=50))["avisos"]
    response = await client.get("/v1/avisos", params={"limite": 50}, headers={**who, "Accept": "application/x-ndjson"})
    assert response.headers["content-type"] == "application/x-ndjson"
    *lines, end = response.content.splitlines()
    assert [orjson.loads(line) for line in lines] == as_json and len(lines) == 50
    assert orjson.loads(end) == {"fin": True, "hay_mas": True}, "the page says it is whole, and that more follow"
    first = as_json[0]
    assert isinstance(first["valor_descuento"], str) and first["publicado_en"].endswith("Z")
    assert set(first) == {
        "folio",
        "tipo_aviso",
        "clase",
        "rfc_patron",
        "nrp",
        "nss",
        "rfc_trabajador",
        "curp",
        "nombre_trabajador",
        "numero_credito",
        "tipo_credito",
        "estatus_credito",
        "tipo_descuento",
        "valor_descuento",
        "fecha_emision",
        "fecha_inicio_descuento",
        "publicado_en",
    }


async def test_the_ndjson_operation_needs_no_accept_header(client, app_settings, db):
    """Generated clients cannot choose Accept: /v1/avisos.ndjson is the same page as NDJSON, same filters."""
    await certify(db, A.rfc)
    who = bearer(app_settings, A.rfc)
    params = {"limite": 20, "clase": "retencion"}
    by_accept = await client.get("/v1/avisos", params=params, headers={**who, "Accept": "application/x-ndjson"})
    by_path = await client.get("/v1/avisos.ndjson", params=params, headers=who)
    assert by_path.status_code == 200 and by_path.headers["content-type"] == "application/x-ndjson"
    assert by_path.content == by_accept.content and len(by_path.content.splitlines()) == 20 + 1  # the final line
    assert by_path.headers["ratelimit"].startswith('"600/minute"')
    refused = await client.get("/v1/avisos.ndjson", params={"limite": 10_001}, headers=who)
    assert refused.status_code == 422 and refused.json()["code"] == "limite_fuera_de_rango"


async def test_names_with_quotes_and_backslashes_survive(client, app_settings, db):
    await certify(db, A.rfc)
    async with db.begin() as conn:
        await conn.execute(
            text(
                "UPDATE aviso SET nombre_trabajador = :n "
                "WHERE folio = (SELECT min(folio) FROM aviso WHERE rfc_patron = :r)"
            ),
            {"n": 'PÉREZ "EL GÜERO" \\ MUÑOZ', "r": A.rfc},
        )
    names = {a["nombre_trabajador"] for a in (await page(client, bearer(app_settings, A.rfc)))["avisos"]}
    assert 'PÉREZ "EL GÜERO" \\ MUÑOZ' in names


async def test_one_aviso_by_folio(client, app_settings, db):
    await certify(db, DEV)
    await relate(client, app_settings, nrps=[A.nrps[0]])
    who = bearer(app_settings, DEV)
    [mine, *_] = await folios_in_order(db, A.rfc, f"nrp = '{A.nrps[0]}'")
    [not_covered, *_] = await folios_in_order(db, A.rfc, f"nrp <> '{A.nrps[0]}'")
    [other_employer, *_] = await folios_in_order(db, B.rfc)
    response = await client.get(f"/v1/avisos/{mine}", headers=who)
    assert response.status_code == 200 and response.json()["folio"] == mine
    for hidden in (not_covered, other_employer, "20269999999999"):
        missing = await client.get(f"/v1/avisos/{hidden}", headers=who)
        assert missing.status_code == 404 and missing.json()["code"] == "aviso_no_encontrado"


async def test_avisos_are_never_stored_by_a_cache(client, app_settings, db):
    await certify(db, A.rfc)
    who = bearer(app_settings, A.rfc)
    as_json = await client.get("/v1/avisos", params={"limite": 5}, headers=who)
    as_ndjson = await client.get("/v1/avisos", params={"limite": 5}, headers={**who, "Accept": "application/x-ndjson"})
    one = await client.get(f"/v1/avisos/{as_json.json()['avisos'][0]['folio']}", headers=who)
    for response in (as_json, as_ndjson, one):
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"


# ------------------------------------------------------------------ long polling


async def _publish(db_url: str, employer, count: int, seed: int) -> list[str]:
    records = list(demo_avisos([employer], count, seed=seed, hasta=f.HASTA))
    engine = create_async_engine(async_url(db_url))
    with tempfile.TemporaryDirectory() as folder:
        async with engine.begin() as conn:
            await loaders.load_avisos(conn, f.write_ndjson(Path(folder) / "n.ndjson", records), today=f.TODAY)
    await engine.dispose()
    return [r["folio"] for r in records]


async def test_espera_returns_as_soon_as_an_aviso_is_published(client, app_settings, db, db_url):
    await certify(db, A.rfc)
    who = bearer(app_settings, A.rfc)
    last = (await folios_in_order(db, A.rfc))[-1]
    started = asyncio.get_running_loop().time()
    waiting = asyncio.create_task(client.get("/v1/avisos", params={"despues_de": last, "espera": 20}, headers=who))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    published = await _publish(db_url, A, 3, seed=77)
    response = await waiting
    elapsed = asyncio.get_running_loop().time() - started
    assert [a["folio"] for a in response.json()["avisos"]] == published
    assert elapsed < 5, f"woke up after {elapsed:.1f} s, not at the 20 s timeout"


async def test_espera_gives_an_empty_page_at_timeout(client, app_settings, db):
    await certify(db, A.rfc)
    last = (await folios_in_order(db, A.rfc))[-1]
    started = asyncio.get_running_loop().time()
    body = await page(client, bearer(app_settings, A.rfc), despues_de=last, espera=1)
    assert body == {"avisos": [], "hay_mas": False}
    assert asyncio.get_running_loop().time() - started >= 1


async def _publish_quietly(db_url: str, rfc: str, count: int) -> list[str]:
    """Avisos published as every writer publishes them, but with no NOTIFY: a notification lost on the way."""
    cols = [c for c in CAMPOS_CARGA_AVISO if c not in ("folio", "rfc_patron", "nrp")] + ["clase"]
    source = (
        f"SELECT substr(folio, 1, 4) || '99' || substr(folio, 7) AS folio, rfc_patron, nrp, {', '.join(cols)}, "
        f"seq AS orden FROM aviso WHERE rfc_patron = :rfc AND substr(folio, 5, 2) <> '99' ORDER BY seq LIMIT {count}"
    )
    engine = create_async_engine(async_url(db_url))
    async with engine.begin() as conn:
        await publicacion.publish(conn, "aviso", ("folio", "rfc_patron", "nrp", *cols), source, {"rfc": rfc})
    await engine.dispose()
    return [f[:4] + "99" + f[6:] for f in (await _first_folios(db_url, rfc, count))]


async def _first_folios(db_url: str, rfc: str, count: int) -> list[str]:
    engine = create_async_engine(async_url(db_url))
    try:
        return (await folios_in_order(engine, rfc, "substr(folio, 5, 2) <> '99'"))[:count]
    finally:
        await engine.dispose()


@asynccontextmanager
async def _client_with(app_settings, **update):
    app = create_app(app_settings.model_copy(update=update))
    async with LifespanManager(app) as manager:
        transport = httpx2.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client:
            yield client


@pytest.fixture
def checks(monkeypatch) -> list[str]:
    """Every long-poll check the app runs (the real query, counted): the SQL it asked."""
    asked: list[str] = []
    real = avisos_sql.has_rows

    async def counted(engine, filtros, cursor) -> bool:
        asked.append(avisos_sql.rows_query(filtros, cursor))
        return await real(engine, filtros, cursor)

    monkeypatch.setattr(avisos_sql, "has_rows", counted)
    return asked


async def test_waiters_of_one_employer_share_one_check_per_distinct_query(client, app_settings, db, db_url, checks):
    """Twenty clients waiting on two distinct page queries: after the load's NOTIFY, two checks, not twenty."""
    await certify(db, A.rfc)
    who = bearer(app_settings, A.rfc)
    last = (await folios_in_order(db, A.rfc))[-1]
    shapes = [{"despues_de": last}, {"despues_de": last, "emitidos_desde": "2000-01-01"}]
    waiting = await _wait_one_by_one(client, who, shapes, 20, checks)
    checks.clear()
    published = await _publish(db_url, A, 3, seed=79)
    for response in await asyncio.gather(*waiting):
        assert [a["folio"] for a in response.json()["avisos"]] == published
    assert len(checks) == len(set(checks)) == 2, checks


async def test_woken_waiters_reauthorize_in_turns(client, app_settings, db, db_url, checks, monkeypatch):
    """Twelve clients woken by one load re-authorize WOKEN_AT_ONCE at a time, not all at once: interleaving
    every woken request's round trips made the first page as late as the last (issue 14, the 1 s bar)."""
    await certify(db, A.rfc)
    who = bearer(app_settings, A.rfc)
    last = (await folios_in_order(db, A.rfc))[-1]
    at_once, most = [0], [0]

    def counted(reauthorize):
        async def counting(*args, **kwargs):
            at_once[0] += 1
            most[0] = max(most[0], at_once[0])
            try:
                return await reauthorize(*args, **kwargs)
            finally:
                at_once[0] -= 1

        return counting

    # The common page re-authorizes in the lean statement, any other in _permit_again: both in turns.
    for name in ("_permit_again", "lean_list"):
        monkeypatch.setattr(reading, name, counted(getattr(reading, name)))
    waiting = await _wait_one_by_one(client, who, [{"despues_de": last}], 12, checks)
    published = await _publish(db_url, A, 2, seed=83)
    for response in await asyncio.gather(*waiting):
        assert [a["folio"] for a in response.json()["avisos"]] == published
    assert 1 < most[0] <= notify.WOKEN_AT_ONCE, most[0]


async def _wait_one_by_one(client, who: dict, shapes: list[dict], n: int, checks: list[str]) -> list[asyncio.Task]:
    """n long polls, started one at a time, each until its first check: from then on it is registered."""
    waiting = []
    for i in range(n):
        params = {**shapes[i % len(shapes)], "espera": 25}
        waiting.append(asyncio.create_task(client.get("/v1/avisos", params=params, headers=who)))
        while len(checks) <= i:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    assert not any(w.done() for w in waiting)
    return waiting


async def test_an_idle_waiter_costs_no_transaction(app_settings, db, db_url, checks):
    """Twenty clients waiting with nothing new: the database counts no transaction while they wait."""
    await certify(db, A.rfc)
    who = bearer(app_settings, A.rfc)
    last = (await folios_in_order(db, A.rfc))[-1]
    count = text("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")

    async def transactions() -> int:
        async with db.connect() as conn:
            return await conn.scalar(count)

    # The key refresh (one query every 10 s per process) and the safety re-check (one per employer every 10–15 s,
    # tested on its own) are not a waiter's cost; they are kept out of the count.
    async with _client_with(app_settings, keys_refresh_seconds=3600, espera_recheck_seconds=3600) as client:
        waiting = await _wait_one_by_one(client, who, [{"despues_de": last}], 20, checks)
        # A backend reports its counts up to 10 s late (PostgreSQL's idle stats interval): wait that out first.
        await asyncio.sleep(11)
        before = await transactions()
        await asyncio.sleep(4)
        spent = await transactions() - before - 1  # the first count's own transaction
        assert not any(w.done() for w in waiting)
        for w in waiting:
            w.cancel()
    # The listener's heartbeat (one query every 15 s) may fall in the window, and on a busy machine a pooled
    # connection idle since the setup may report its last transactions late; one query per waiter per second
    # (what this replaced) would be 80.
    assert spent <= 4, f"{spent} transactions in 4 s with 20 idle waiters"


async def test_a_lost_notify_is_healed_by_the_safety_recheck(app_settings, db, db_url):
    await certify(db, A.rfc)
    who = bearer(app_settings, A.rfc)
    last = (await folios_in_order(db, A.rfc))[-1]
    async with _client_with(app_settings, espera_recheck_seconds=1.0) as client:
        waiting = asyncio.create_task(client.get("/v1/avisos", params={"despues_de": last, "espera": 20}, headers=who))
        await asyncio.sleep(0.5)
        started = asyncio.get_running_loop().time()
        published = await _publish_quietly(db_url, A.rfc, 2)
        response = await waiting
    elapsed = asyncio.get_running_loop().time() - started
    assert [a["folio"] for a in response.json()["avisos"]] == published
    assert elapsed < 3, f"a lost NOTIFY healed after {elapsed:.1f} s, with the safety re-check every ~1 s"


async def test_a_notify_ahead_of_its_rows_is_followed_by_quick_rechecks(client, app_settings, db, db_url):
    """A replica may not have replayed the commit the primary notified: the NOTIFY arrives, the check finds
    nothing, and the rows show up a moment later. They must not wait for the 10–15 s safety re-check."""
    await certify(db, A.rfc)
    who = bearer(app_settings, A.rfc)
    last = (await folios_in_order(db, A.rfc))[-1]
    waiting = asyncio.create_task(client.get("/v1/avisos", params={"despues_de": last, "espera": 20}, headers=who))
    await asyncio.sleep(0.5)
    started = asyncio.get_running_loop().time()
    async with db.connect() as conn:
        await conn.execute(text("SELECT pg_notify('avisos', :rfc)"), {"rfc": A.rfc})
        await conn.commit()
    await asyncio.sleep(0.15)  # the watch has checked and found nothing
    published = await _publish_quietly(db_url, A.rfc, 2)
    response = await waiting
    elapsed = asyncio.get_running_loop().time() - started
    assert [a["folio"] for a in response.json()["avisos"]] == published
    assert elapsed < 2.5, f"rows committed just after their NOTIFY waited {elapsed:.1f} s"


# ------------------------------------------------------------------ audit and rate limits


async def test_every_request_writes_one_audit_row(client, app_settings, db):
    await certify(db, DEV)
    relation = await relate(client, app_settings)
    response = await client.get(
        "/v1/avisos",
        params={"rfc_patron": A.rfc, "limite": 20, "clase": "retencion"},
        headers=bearer(app_settings, DEV),
    )
    row = None
    for _ in range(50):  # written by the background writer within ~100 ms (app/audit_writer.py)
        async with db.connect() as conn:
            row = (await conn.execute(text("SELECT * FROM evento_auditoria WHERE accion = 'avisos.consulta'"))).first()
        if row is not None:
            break
        await asyncio.sleep(0.05)
    assert row is not None
    assert row.actor == DEV and row.rfc_patron == A.rfc and row.cantidad == len(response.json()["avisos"]) == 20
    assert str(row.relacion_id) == relation["id"] and row.request_id == response.headers["x-request-id"]
    assert row.detalle["filtros"]["clase"] == "retencion" and row.detalle["limite"] == 20
    assert row.detalle["completo"] is True
    view = (await client.get("/v1/auditoria", headers=bearer(app_settings, A.rfc))).json()
    assert view["eventos"][0]["accion"] == "avisos.consulta" and view["eventos"][0]["cantidad"] == 20


async def test_rate_limit_answers_429_with_retry_after(app_settings, db):
    await certify(db, A.rfc)
    limited = app_settings.model_copy(update={"rate_limit_avisos": "3/minute"})
    app = create_app(limited)
    async with (
        LifespanManager(app) as manager,
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=manager.app), base_url="http://t") as client,
    ):
        who = bearer(limited, A.rfc)
        answers = [await client.get("/v1/avisos", params={"limite": 1}, headers=who) for _ in range(4)]
        # The sandbox counts apart: certifying does not spend production quota (no attempt open, so 403).
        sandbox = await client.get("/sandbox/v1/avisos", params={"limite": 1}, headers=who)
    assert sandbox.status_code == 403 and sandbox.json()["code"] == "sin_intento_en_curso"
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["ratelimit"].startswith('"3/minute";r=2')
    last = answers[-1]
    assert last.json()["code"] == "limite_de_tasa" and 0 < int(last.headers["retry-after"]) <= 60
    assert "ratelimit-policy" in last.headers


async def test_opening_certification_attempts_is_rate_limited(app_settings):
    """Each attempt writes thousands of sandbox avisos: a loop of POSTs is stopped before it fills the database."""
    limited = app_settings.model_copy(update={"rate_limit_certificaciones": "2/hour"})
    app = create_app(limited)
    async with (
        LifespanManager(app) as manager,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=manager.app),
            base_url="http://t",
            event_hooks=documented_problems.event_hooks(),
        ) as client,
    ):
        answers = [await client.post("/v1/certificaciones", headers=bearer(limited, DEV)) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert answers[-1].json()["code"] == "limite_de_tasa" and int(answers[-1].headers["retry-after"]) > 60


@pytest.mark.slow
async def test_disconnect_midway_is_audited_with_what_was_sent(app_settings, db, db_url):
    """A real server (the in-process transport buffers whole bodies): the client reads a little and leaves."""
    await certify(db, A.rfc)
    total = COUNTS[A.rfc] + len(await _publish(db_url, A, 30_000, seed=91))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(app_settings), host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        token = bearer(app_settings, A.rfc)["Authorization"]
        writer.write(
            f"GET /v1/avisos?limite=10000 HTTP/1.1\r\nHost: x\r\nAccept: application/x-ndjson\r\n"
            f"Authorization: {token}\r\n\r\n".encode()
        )
        await writer.drain()
        received = b""
        while len(received) < 200_000:  # past the headers, into the avisos
            received += await reader.read(64 * 1024)
        assert b" 200 " in received.split(b"\r\n")[0]
        writer.transport.abort()  # leaves without reading the rest
        row = None
        for _ in range(100):
            async with db.connect() as conn:
                row = (
                    await conn.execute(
                        text("SELECT cantidad, detalle FROM evento_auditoria WHERE accion = 'avisos.consulta'")
                    )
                ).first()
            if row:
                break
            await asyncio.sleep(0.1)
        assert row is not None, "the audit row of the interrupted request"
        assert 0 < row.cantidad < 10_000 < total, row.cantidad
        assert row.detalle["completo"] is False
    finally:
        server.should_exit = True
        await serving


ABANDONED, AFTERWARDS = 20, 100


# What every statement that reads a page's avisos does (the block query and the lean statement's first block).
_READS_A_PAGE = "convert_to(string_agg("


async def _page_reads_running(db) -> int:
    assert _READS_A_PAGE in avisos_sql.block_query(avisos_sql.Filtros(A.rfc))
    assert _READS_A_PAGE in avisos_sql.LEAN_PAGE_SQL
    async with db.connect() as conn:
        sql = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state <> 'idle' AND strpos(query, :reads) > 0"
        )
        return int(await conn.scalar(text(sql), {"reads": _READS_A_PAGE}))


@pytest.mark.slow
async def test_abandoned_downloads_never_poison_the_pool(app_settings, db, db_url, tmp_path):
    """Issue 14.1. Clients leave large NDJSON pages after their first chunk, while their blocks are still read;
    then ordinary requests on the same small pool are all answered whole, no connection is left reading a
    page, and the server logged no error (a connection handed back with a statement in flight fails its reset,
    "cannot switch to state 15; another operation is in progress", or the next request that draws it)."""
    await certify(db, A.rfc)
    await _publish(db_url, A, 40_000, seed=92)
    token = bearer(app_settings, A.rfc)["Authorization"]
    small_pool = {
        "SIA_DB_POOL_SIZE": "2",
        "SIA_DB_MAX_OVERFLOW": "0",
        "SIA_RATE_LIMIT_ENABLED": "false",
        "SIA_AVISOS_LIMITE_MAX": "50000",
        # A busy machine must not pass for a poisoned pool: no request here waits for a connection that long.
        "SIA_DB_POOL_TIMEOUT_SECONDS": "20",
    }
    log = tmp_path / "server.log"
    with live_server(db_url, app_settings.data_dir, log=log, **small_pool) as base:
        port = int(base.rsplit(":", 1)[1])
        request = (
            f"GET /v1/avisos?limite=50000 HTTP/1.1\r\nHost: x\r\nAccept: application/x-ndjson\r\n"
            f"Authorization: {token}\r\n\r\n"
        ).encode()
        for _ in range(ABANDONED):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            received = b""
            while received.count(b'"folio"') < 10:  # the first chunk of avisos, of about 19 MB
                chunk = await reader.read(64 * 1024)
                if not chunk:
                    break  # answered whole: not a page of avisos (a problem)
                received += chunk
            assert received.startswith(b"HTTP/1.1 200 "), received[:500]
            writer.transport.abort()  # gone, without reading the rest
        async with httpx2.AsyncClient(base_url=base, headers={"Authorization": token}, timeout=30) as client:

            async def ordinary(i: int) -> str | None:
                try:
                    response = await client.get("/v1/avisos", params={"limite": 50 + i % 7})
                    body = response.json()
                    if response.status_code != 200 or len(body["avisos"]) != 50 + i % 7 or not body["hay_mas"]:
                        return f"{response.status_code} {response.text[:200]}"
                except (httpx2.HTTPError, ValueError) as e:  # a cut body: transport error or broken JSON
                    return repr(e)
                return None

            errors = []
            for start in range(0, AFTERWARDS, 2):  # two at a time, as many as the pool holds
                errors += [e for e in await asyncio.gather(*(ordinary(start + i) for i in range(2))) if e]
        assert errors == [], f"{len(errors)} of {AFTERWARDS} failed: {errors[:3]}"
        for _ in range(50):  # the abandoned reads end (their connections were terminated), none lingers in the pool
            if await _page_reads_running(db) == 0:
                break
            await asyncio.sleep(0.1)
        assert await _page_reads_running(db) == 0
        logged = log.read_text()
    assert "Traceback" not in logged and "another operation" not in logged, logged[-3000:]


# ------------------------------------------------------------------ small oracles and races


async def test_an_uncertified_caller_cannot_tell_existing_folios_from_missing_ones(client, app_settings, db):
    [existing, *_] = await folios_in_order(db, A.rfc)
    who = bearer(app_settings, OTHER)
    found = await client.get(f"/v1/avisos/{existing}", headers=who)
    missing = await client.get("/v1/avisos/20269999999999", headers=who)
    assert (found.status_code, found.json()["code"]) == (missing.status_code, missing.json()["code"])
    assert found.json()["detail"].replace(existing, "") == missing.json()["detail"].replace("20269999999999", "")


async def test_a_cursor_outside_the_covered_nrps_is_as_unknown_as_a_missing_one(client, app_settings, db):
    await certify(db, DEV)
    await relate(client, app_settings, nrps=[A.nrps[0]])
    who = bearer(app_settings, DEV)
    [not_covered, *_] = await folios_in_order(db, A.rfc, f"nrp <> '{A.nrps[0]}'")
    [covered, *_] = await folios_in_order(db, A.rfc, f"nrp = '{A.nrps[0]}'")
    assert (await client.get("/v1/avisos", params={"rfc_patron": A.rfc, "despues_de": covered}, headers=who)).is_success
    outside = await client.get("/v1/avisos", params={"rfc_patron": A.rfc, "despues_de": not_covered}, headers=who)
    missing = await client.get("/v1/avisos", params={"rfc_patron": A.rfc, "despues_de": "20269999999999"}, headers=who)
    assert outside.status_code == missing.status_code == 422
    assert outside.json()["code"] == missing.json()["code"] == "despues_de_desconocido"


async def test_a_cursor_of_another_readable_nrp_still_works_with_an_nrp_filter(client, app_settings, db):
    """The bound is what the caller may read, not what one request filters: a client that downloaded every NRP
    may continue one of them from its last folio."""
    await certify(db, DEV)
    await relate(client, app_settings, nrps=[A.nrps[0], A.nrps[1]])
    who = bearer(app_settings, DEV)
    [other_readable, *_] = await folios_in_order(db, A.rfc, f"nrp = '{A.nrps[1]}'")
    params = {"rfc_patron": A.rfc, "nrp": A.nrps[0], "despues_de": other_readable}
    body = await page(client, who, **params)
    assert {a["nrp"] for a in body["avisos"]} <= {A.nrps[0]}


async def test_concurrent_revocations_make_one_revocation_and_one_acuse(client, app_settings, db):
    await certify(db, DEV)
    relation = await relate(client, app_settings)
    employer = bearer(app_settings, A.rfc)
    url = f"/v1/relaciones-confianza/{relation['id']}"
    # Six pooled connections first: opening them would otherwise space the requests out more than the race.
    await asyncio.gather(*(client.get(url, headers=employer) for _ in range(6)))
    answers = await asyncio.gather(*(client.delete(url, headers=employer) for _ in range(6)))
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    assert len({a.json()["folio_acuse_revocacion"] for a in answers}) == 1
    assert len({a.json()["revocada_en"] for a in answers}) == 1
    async with db.connect() as conn:
        acuses = await conn.scalar(text("SELECT count(*) FROM acuse WHERE tipo = 'relacion.revocacion'"))
        events = await conn.scalar(text("SELECT count(*) FROM evento_auditoria WHERE accion = 'relacion.revocada'"))
    assert acuses == events == 1


async def test_a_long_poll_is_authorized_again_after_its_wait(client, app_settings, db, db_url):
    """Authorized when it arrived, revoked while it waited: the avisos published after the revocation stay
    with the employer."""
    await certify(db, DEV)
    relation = await relate(client, app_settings)
    last = (await folios_in_order(db, A.rfc))[-1]
    params = {"rfc_patron": A.rfc, "despues_de": last, "espera": 20}
    waiting = asyncio.create_task(client.get("/v1/avisos", params=params, headers=bearer(app_settings, DEV)))
    await asyncio.sleep(0.5)
    revoked = await client.delete(f"/v1/relaciones-confianza/{relation['id']}", headers=bearer(app_settings, A.rfc))
    assert revoked.status_code == 200 and not waiting.done()
    await _publish(db_url, A, 3, seed=78)
    response = await waiting
    assert response.status_code == 403, response.text[:300]
    assert response.json()["code"] == "sin_autorizacion"
    async with db.connect() as conn:
        actions = list(await conn.scalars(text("SELECT accion FROM evento_auditoria WHERE actor = :r"), {"r": DEV}))
    assert actions == ["avisos.consulta_rechazada"], "the refusal after the wait is audited, not a read"


async def test_refused_reads_are_audited_and_the_employer_sees_them(client, app_settings, db):
    await certify(db, OTHER)
    [folio, *_] = await folios_in_order(db, A.rfc)
    no_relationship = await client.get("/v1/avisos", params={"rfc_patron": A.rfc}, headers=bearer(app_settings, OTHER))
    uncertified = await client.get(f"/v1/avisos/{folio}", headers=bearer(app_settings, DEV))
    assert (no_relationship.status_code, uncertified.status_code) == (403, 403)
    view = (await client.get("/v1/auditoria", headers=bearer(app_settings, A.rfc))).json()["eventos"]
    refused = {e["actor"]: e for e in view if e["accion"] == "avisos.consulta_rechazada"}
    assert refused[OTHER]["detalle"]["motivo"] == "sin_relacion" and refused[OTHER]["cantidad"] == 0
    assert refused[OTHER]["request_id"] == no_relationship.headers["x-request-id"]
    assert refused[DEV]["detalle"] == {"motivo": "sin_certificacion", "folio": folio}
    other_view = (await client.get("/v1/auditoria", headers=bearer(app_settings, B.rfc))).json()["eventos"]
    assert not [e for e in other_view if e["accion"] == "avisos.consulta_rechazada"], "only the employer concerned"


# ------------------------------------------------------------------ the bytes served (rendered once, relayed)

# Names a payroll system may meet, and every byte JSON or COPY text treats specially (PostgreSQL text holds no NUL).
NAMES = [
    'PÉREZ "EL GÜERO" \\ MUÑOZ',
    "TAB\tSALTO\nRETORNO\rCONTROL\x01\x08\x0b\x0c\x1b\x1f\x7f",
    "EMOJI 👷🏽\u200d♀️ SEPARADORES\u2028\u2029 FIN",
    "\\\\ \\n \\t \\u0041 \\N",
    '"',
    "\\",
]
# Identifiers are validated by every loader, but a writer in SQL is not: the same bytes in one, the CURP (18).
IDENTIFIERS = ['C"URP', "C\\URP", "C\x01\x1fURP\x7f", "CÑ\u2028\u2029👷", "\t\n\r", '"']
# Today's renderer before avisos carried their JSON, kept as the reference the served bytes must equal: the
# page's columns as COPY text, one bytes-format per row, orjson when a row needs escaping.
_OLD_COLUMNS = ", ".join(
    {
        "valor_descuento": "valor_descuento::text",
        "publicado_en": "to_char(publicado_en AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    }.get(c, c)
    for c in CAMPOS_AVISO
)
_OLD_TEMPLATE = (b"{" + b",".join(b'"%s":"%%s"' % c.encode() for c in CAMPOS_AVISO) + b"}").replace(b"%%s", b"%s")
_OLD_NEEDS_CARE = re.compile(rb'["\\\x00-\x08\x0b-\x1f]')


def _old_copy_text_field(raw: bytes) -> str:
    out, i, text_ = [], 0, raw.decode()
    escapes = {"t": "\t", "n": "\n", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "\\": "\\"}
    while i < len(text_):
        ch = text_[i]
        if ch == "\\" and i + 1 < len(text_):
            out.append(escapes.get(text_[i + 1], text_[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _old_row_to_json(line: bytes) -> bytes:
    if _OLD_NEEDS_CARE.search(line) is None:
        return _OLD_TEMPLATE % tuple(line.split(b"\t"))
    return orjson.dumps(dict(zip(CAMPOS_AVISO, (_old_copy_text_field(f) for f in line.split(b"\t")), strict=True)))


async def _old_rendering(db, table: str, where: str, limite: int) -> tuple[list[bytes], dict[str, bytes]]:
    """The first limite avisos as today's page rendered them, and each one as today's single-aviso route did."""
    query = f"SELECT {_OLD_COLUMNS} FROM {table} WHERE {where} ORDER BY seq LIMIT {limite}"
    copied = bytearray()

    async def sink(data: bytes) -> None:
        copied.extend(data)

    async with db.connect() as conn:
        raw = await conn.get_raw_connection()
        assert raw.driver_connection is not None
        await raw.driver_connection.copy_from_query(query, output=sink)
        singles = {
            row[0]: AvisoSchema.model_validate(dict(zip(CAMPOS_AVISO, row, strict=True))).model_dump_json().encode()
            for row in await conn.execute(text(query))
        }
    return [_old_row_to_json(line) for line in bytes(copied).splitlines()], singles


async def test_the_bytes_served_are_todays_for_every_name_production_and_sandbox(client, app_settings, db):
    await certify(db, A.rfc)
    opened = await client.post("/v1/certificaciones", headers=bearer(app_settings, DEV))
    assert opened.status_code == 201, opened.text
    attempt = opened.json()["id"]
    scopes = [
        ("/v1/avisos", bearer(app_settings, A.rfc), "aviso", f"rfc_patron = '{A.rfc}'"),
        ("/sandbox/v1/avisos", bearer(app_settings, DEV), "sandbox_aviso", f"certificacion_id = '{attempt}'"),
    ]
    for path, who, table, where in scopes:
        async with db.begin() as conn:  # written in SQL: whatever writes an aviso, its JSON follows
            # Names on the even avisos, identifiers on the odd ones.
            for column, values, first in (("nombre_trabajador", NAMES, 0), ("curp", IDENTIFIERS, 1)):
                for k, value in enumerate(values):
                    await conn.execute(
                        text(
                            f"UPDATE {table} SET {column} = :v WHERE id = "
                            f"(SELECT id FROM {table} WHERE {where} ORDER BY seq OFFSET :k LIMIT 1)"
                        ),
                        {"v": value, "k": 2 * k + first},
                    )
        rows, singles = await _old_rendering(db, table, where, 20)
        served_names = [orjson.loads(r)["nombre_trabajador"] for r in rows]
        assert served_names[: 2 * len(NAMES) : 2] == NAMES, "the reference itself renders every name exactly"
        served_curps = [orjson.loads(r)["curp"] for r in rows]
        assert served_curps[1 : 2 * len(IDENTIFIERS) : 2] == IDENTIFIERS, "and every identifier"

        as_json = await client.get(path, params={"limite": 20}, headers=who)
        assert as_json.status_code == 200, as_json.text
        assert as_json.content == b'{"avisos":[' + b",".join(rows) + b'],"hay_mas":true}'
        ndjson = await client.get(f"{path}.ndjson", params={"limite": 20}, headers=who)
        assert ndjson.content == b"".join(r + b"\n" for r in rows) + b'{"fin":true,"hay_mas":true}\n'
        for row in rows[: 2 * len(NAMES) : 2]:
            folio = orjson.loads(row)["folio"]
            one = await client.get(f"{path}/{folio}", headers=who)
            assert one.status_code == 200 and one.content == singles[folio]


async def test_a_writers_session_settings_do_not_change_an_avisos_json(db):
    """The rendering is IMMUTABLE only while nothing in it depends on the session: a writer with another
    DateStyle, TimeZone or locale stores the same bytes."""
    where = f"rfc_patron = '{A.rfc}'"
    before, _ = await _old_rendering(db, "aviso", where, 3)
    async with db.begin() as conn:
        for setting in ("DateStyle = 'SQL, DMY'", "TimeZone = 'America/Mexico_City'", "lc_numeric = 'C'"):
            await conn.execute(text(f"SET LOCAL {setting}"))
        # Rewritten under these settings: the generated column is computed again, with this session's.
        await conn.execute(text(f"UPDATE aviso SET nombre_trabajador = nombre_trabajador WHERE {where}"))
        stored = list(await conn.scalars(text(f"SELECT json FROM aviso WHERE {where} ORDER BY seq LIMIT 3")))
    assert [s.encode() for s in stored] == before
