"""The lean path of GET /v1/avisos (app.routers.avisos.LeanListing) answers exactly what the route answers.

Two apps on one committed database, one with the lean path and one without (SIA_AVISOS_LEAN_PATH=false), are
asked the same requests in turn: every shape the lean path serves and every shape it must hand to the route
(other parameters, malformed ones, refusals, unknown cursors, bad tokens, a cancelled credential, the rate
limit). Status, body, media type and rate-limit headers must be the same, and so must the audit rows; and the
lean path must really have served the common shapes, or the comparison would prove nothing."""

import asyncio
import datetime as dt
import re
import socket
from collections.abc import Iterator
from contextlib import AsyncExitStack

import httpx2
import orjson
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app import loaders
from app.avisos import reading, sql
from app.avisos import stream as streaming
from app.db import LEAN_POOL_PLANNING, Database, Timeouts, async_url
from app.main import create_app
from app.models import Credencial
from app.security.keys import load_keys
from tests import factories as f
from tests.avisos_world import CERTIFICACION, DEV, OTHER, A, B, bearer, certification, credential, credential_id, seed
from tests.test_avisos import _publish, certify, folios_in_order, relate
from tests.test_loaders import _load_registry


@pytest.fixture
def db_url(new_database) -> str:
    url = new_database()
    seed(url)
    return url


@pytest.fixture
def app_settings(settings, db_url, tmp_path):
    live = settings.model_copy(update={"database_url": db_url, "data_dir": tmp_path, "rate_limit_avisos": "70/minute"})
    load_keys(live)
    return live


@pytest.fixture
async def db(db_url):
    engine = create_async_engine(async_url(db_url))
    yield engine
    await engine.dispose()


@pytest.fixture
async def clients(app_settings):
    """(lean, route): the same app with the lean path on and off."""
    async with AsyncExitStack() as stack:
        pair = []
        for lean in (True, False):
            app = create_app(app_settings.model_copy(update={"avisos_lean_path": lean}))
            manager = await stack.enter_async_context(LifespanManager(app))
            transport = httpx2.ASGITransport(app=manager.app, raise_app_exceptions=False)
            client = httpx2.AsyncClient(transport=transport, base_url="http://testserver", timeout=30)
            pair.append(await stack.enter_async_context(client))
        yield tuple(pair)


@pytest.fixture
def served(monkeypatch) -> list[bool]:
    """For each time the lean path was tried: whether it answered (True) or handed the request on (False)."""
    outcomes: list[bool] = []
    original = reading.lean_list

    async def counted(*args, **kwargs):
        read = await original(*args, **kwargs)
        outcomes.append(read is not None)
        return read

    monkeypatch.setattr(reading, "lean_list", counted)
    return outcomes


def _compared(response: httpx2.Response, request_id: str) -> tuple:
    # The request id is each request's own; the rest must be byte for byte the same.
    body = response.content.replace(request_id.encode(), b"<id>")
    rate = {k: v for k, v in response.headers.items() if k.startswith("ratelimit") or k == "retry-after"}
    # Seconds to the window's reset are a clock read: two requests a moment apart may straddle a second.
    rate = {k: v.rsplit(";t=", 1)[0] for k, v in rate.items()}
    if "retry-after" in rate:
        assert 0 < int(rate["retry-after"]) <= 60
        rate["retry-after"] = "<s>"
        body = re.sub(rb"reintente en \d+ s", b"reintente en <s> s", body)
    return response.status_code, response.headers.get("content-type"), body, rate


async def _audit_rows(db, request_id: str) -> list[tuple]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text(
                """SELECT accion, actor, rfc_patron, nrps, cantidad, relacion_id, detalle FROM evento_auditoria
                   WHERE request_id = :id ORDER BY id"""
            ),
            {"id": request_id},
        )
        return [tuple(r) for r in rows]


async def test_the_lean_path_answers_as_the_route_does_for_every_shape(clients, served, app_settings, db):
    lean, route = clients
    await certify(db, A.rfc)
    await certify(db, DEV)
    await relate(lean, app_settings, nrps=[A.nrps[0]])
    a_folios = await folios_in_order(db, A.rfc)
    covered_folios = await folios_in_order(db, A.rfc, f"nrp = '{A.nrps[0]}'")
    outside_folio = next(f for f in a_folios if f not in covered_folios)
    b_folio = (await folios_in_order(db, B.rfc))[0]
    employer, developer, stranger = bearer(app_settings, A.rfc), bearer(app_settings, DEV), bearer(app_settings, OTHER)
    ndjson = {"Accept": "application/x-ndjson"}

    # (path, params, headers, whether the lean path serves it)
    shapes: list[tuple[str, dict | list, dict, bool]] = [
        ("/v1/avisos", {}, employer, True),
        ("/v1/avisos", {"limite": 1}, employer, True),
        ("/v1/avisos", {"limite": 7}, employer, True),
        ("/v1/avisos", {"limite": 150}, employer, True),  # exactly all of them: hay_mas false
        ("/v1/avisos", {"limite": 149}, employer, True),
        ("/v1/avisos", {"limite": 1000}, employer, True),
        ("/v1/avisos", {"limite": 1001}, employer, True),  # streamed from the statement's first block
        ("/v1/avisos.ndjson", {"limite": 10000}, employer, True),
        ("/v1/avisos", {"despues_de": a_folios[9], "limite": 20}, employer, True),
        ("/v1/avisos", {"despues_de": a_folios[-1]}, employer, True),  # nothing after it
        ("/v1/avisos", {"rfc_patron": A.rfc, "limite": 30}, employer, True),
        ("/v1/avisos", [("nrp", A.nrps[1]), ("nrp", A.nrps[0]), ("nrp", A.nrps[1])], employer, True),
        ("/v1/avisos", {"nrp": "Z9912345678"}, employer, True),  # well formed, none of its avisos
        ("/v1/avisos", {"limite": 5}, {**employer, **ndjson}, True),
        ("/v1/avisos", {}, {**employer, "Accept": "application/jsonl"}, True),
        ("/v1/avisos.ndjson", {"limite": 3}, employer, True),
        ("/v1/avisos.ndjson", {"despues_de": a_folios[-1]}, employer, True),
        ("/v1/avisos", {"rfc_patron": A.rfc}, developer, True),
        ("/v1/avisos", {"rfc_patron": A.rfc, "nrp": A.nrps[0], "limite": 2}, developer, True),
        ("/v1/avisos", {"rfc_patron": A.rfc, "despues_de": covered_folios[0]}, developer, True),
        ("/v1/avisos.ndjson", {"rfc_patron": A.rfc}, developer, True),
        # refused, unknown or other cursors: the route's problems and refusal rows
        ("/v1/avisos", {"rfc_patron": B.rfc}, employer, False),
        ("/v1/avisos", {"rfc_patron": A.rfc, "nrp": A.nrps[1]}, developer, False),
        ("/v1/avisos", {"rfc_patron": A.rfc, "despues_de": outside_folio}, developer, False),
        ("/v1/avisos", {}, developer, False),  # rfc_patron_requerido
        ("/v1/avisos", {"rfc_patron": A.rfc}, stranger, False),  # not certified
        ("/v1/avisos", {"despues_de": b_folio}, employer, False),
        ("/v1/avisos", {"despues_de": "20269900000001"}, employer, False),
        # shapes the lean path leaves to the route
        ("/v1/avisos", {"limite": 0}, employer, None),
        ("/v1/avisos", {"limite": "010"}, employer, None),
        ("/v1/avisos", {"limite": "abc"}, employer, None),
        ("/v1/avisos", {"limite": 20000}, employer, None),
        ("/v1/avisos", {"espera": 0}, employer, None),
        ("/v1/avisos", {"clase": "retencion"}, employer, None),
        ("/v1/avisos", {"nss": "12345678903"}, employer, None),
        ("/v1/avisos", {"otro": "x"}, employer, None),
        ("/v1/avisos", [("limite", 2), ("limite", 3)], employer, None),
        ("/v1/avisos", {"rfc_patron": "a" * 13}, employer, None),
        ("/v1/avisos", {"rfc_patron": ""}, employer, None),
        ("/v1/avisos", {"nrp": "X"}, employer, None),
        ("/v1/avisos", {"despues_de": "no-es-folio"}, employer, None),
        ("/v1/avisos", {}, {}, None),
        ("/v1/avisos", {}, {"Authorization": "Basic abc"}, None),
        ("/v1/avisos", {}, {"Authorization": "Bearer not.a.token"}, None),
        ("/v1/avisos", {}, {"Authorization": employer["Authorization"] + "x"}, None),
    ]
    tried_before = 0
    for i, (path, params, headers, lean_serves) in enumerate(shapes):
        answers = []
        for name, client in (("lean", lean), ("route", route)):
            request_id = f"{name}-shape-{i:03d}"
            response = await client.get(path, params=params, headers={**headers, "X-Request-ID": request_id})
            answers.append(_compared(response, request_id))
        assert answers[0] == answers[1], (path, params)
        assert answers[0][0] != 500, (path, params)
        if lean_serves is None:
            assert len(served) == tried_before, f"the lean path tried {path} {params}"
        else:
            assert served[tried_before:] == [lean_serves], (path, params)
        tried_before = len(served)

    # A cancelled credential: its token still verifies, the statement refuses it.
    async with db.begin() as conn:
        await conn.execute(
            Credencial.__table__.update().where(Credencial.id == credential_id(A.rfc)).values(estado="cancelada")
        )
    cancelled = [
        await c.get("/v1/avisos", headers={**employer, "X-Request-ID": f"{n}-gone"})
        for n, c in (("lean", lean), ("route", route))
    ]
    assert _compared(cancelled[0], "lean-gone") == _compared(cancelled[1], "route-gone")
    assert cancelled[0].status_code == 401 and served[-1] is False

    # The rate limit (70 a minute, counted once per request on both): the same 200s and then the same 429s.
    statuses = {"lean": [], "route": []}
    for k in range(70):
        for name, client in (("lean", lean), ("route", route)):
            request_id = f"{name}-rate-{k:03d}"
            response = await client.get(
                "/v1/avisos", params={"rfc_patron": A.rfc}, headers={**developer, "X-Request-ID": request_id}
            )
            statuses[name].append(_compared(response, request_id))
    assert statuses["lean"] == statuses["route"]
    assert {s[0] for s in statuses["lean"]} == {200, 429}

    # The audit rows, request by request (the reads' rows are written by the background writer ~100 ms later).
    ids = [f"shape-{i:03d}" for i in range(len(shapes))] + ["gone"] + [f"rate-{k:03d}" for k in range(70)]
    for _attempt in range(50):
        pairs = [(await _audit_rows(db, f"lean-{i}"), await _audit_rows(db, f"route-{i}")) for i in ids]
        if all(a == b for a, b in pairs):
            break
        await asyncio.sleep(0.1)
    for request_id, (lean_rows, route_rows) in zip(ids, pairs, strict=True):
        assert lean_rows == route_rows, request_id
    assert sum(bool(lean_rows) for lean_rows, _ in pairs) >= 40  # the reads and the refusals were audited


async def test_streamed_pages_answer_as_the_route_does(clients, served, app_settings, db, monkeypatch):
    """Pages larger than the lean path answers whole stream from the first block its statement read: with blocks
    of 7 and pages streamed from 11 avisos on, every edge (a page ending inside a block, at its end, past the
    avisos there are) gives the route's bytes and audit rows."""
    monkeypatch.setattr(reading, "LEAN_LIMITE_MAX", 10)
    monkeypatch.setattr(streaming, "BLOCK_ROWS", 7)
    lean, route = clients
    await certify(db, A.rfc)
    await certify(db, DEV)
    await relate(lean, app_settings, nrps=[A.nrps[0]])
    a_folios = await folios_in_order(db, A.rfc)
    employer, developer = bearer(app_settings, A.rfc), bearer(app_settings, DEV)
    shapes = [
        ("/v1/avisos", {"limite": 11}, employer),
        ("/v1/avisos", {"limite": 13}, employer),
        ("/v1/avisos.ndjson", {"limite": 14}, employer),
        ("/v1/avisos", {"limite": 15}, employer),
        ("/v1/avisos.ndjson", {"limite": 149}, employer),
        ("/v1/avisos", {"limite": 150}, employer),  # all of them: hay_mas false
        ("/v1/avisos.ndjson", {"limite": 500}, employer),
        ("/v1/avisos", {"despues_de": a_folios[100], "limite": 49}, employer),
        ("/v1/avisos.ndjson", {"despues_de": a_folios[100], "limite": 50}, employer),
        ("/v1/avisos", {"rfc_patron": A.rfc, "limite": 40}, developer),  # its relationship's NRP only
        ("/v1/avisos.ndjson", {"rfc_patron": A.rfc, "nrp": A.nrps[0], "limite": 12}, developer),
    ]
    for i, (path, params, headers) in enumerate(shapes):
        answers = []
        for name, client in (("lean", lean), ("route", route)):
            request_id = f"{name}-streamed-{i:03d}"
            response = await client.get(path, params=params, headers={**headers, "X-Request-ID": request_id})
            assert response.status_code == 200, response.text
            answers.append(_compared(response, request_id))
        assert answers[0] == answers[1], (path, params)
    assert served == [True] * len(shapes), "the lean path streamed every one"
    ids = [f"streamed-{i:03d}" for i in range(len(shapes))]
    for _attempt in range(50):
        pairs = [(await _audit_rows(db, f"lean-{i}"), await _audit_rows(db, f"route-{i}")) for i in ids]
        if all(a == b and a for a, b in pairs):
            break
        await asyncio.sleep(0.1)
    assert all(lean_rows == route_rows and lean_rows for lean_rows, route_rows in pairs), pairs


async def test_a_woken_long_poll_gets_the_routes_answer_through_the_lean_statement(
    clients, served, app_settings, db, db_url
):
    """A long poll takes the route (espera is not the lean shape); once woken it authorizes again and reads its
    page in the lean statement: the same answer and audit row as the route's own re-authorization and COPY."""
    lean, route = clients
    await certify(db, A.rfc)
    who = bearer(app_settings, A.rfc)
    last = (await folios_in_order(db, A.rfc))[-1]
    waiting = [
        asyncio.create_task(
            client.get(
                "/v1/avisos.ndjson",
                params={"despues_de": last, "espera": 20},
                headers={**who, "X-Request-ID": f"{name}-woken"},
            )
        )
        for name, client in (("lean", lean), ("route", route))
    ]
    await asyncio.sleep(0.5)
    assert not any(w.done() for w in waiting)
    published = await _publish(db_url, A, 3, seed=78)
    answers = [await w for w in waiting]
    assert [orjson.loads(line)["folio"] for line in answers[0].content.splitlines()[:-1]] == published
    assert _compared(answers[0], "lean-woken") == _compared(answers[1], "route-woken")
    # The lean app's woken poll served by the statement; the route app's tried it too and was refused (no pool).
    assert sorted(served) == [False, True]
    for _attempt in range(50):
        rows = await _audit_rows(db, "lean-woken"), await _audit_rows(db, "route-woken")
        if rows[0] and rows[1]:
            break
        await asyncio.sleep(0.1)
    assert rows[0] == rows[1] and rows[0][0][4] == 3


@pytest.mark.slow
async def test_abandoned_streamed_pages_give_their_connections_back(app_settings, db, db_url, monkeypatch):
    """A real server (the in-process transport buffers whole bodies): clients leave streamed lean pages after
    their first bytes. Each page's connection is terminated and given back, so the lean pool ends with every
    connection free and the next pages are still the lean path's."""
    await certify(db, A.rfc)
    await _publish(db_url, A, 12_000, seed=93)
    pools, outcomes = [], []
    original = reading.lean_list

    async def watched(q, caller, database, *args, **kwargs):
        pools.append(database.lean_pool)
        read = await original(q, caller, database, *args, **kwargs)
        outcomes.append(read is not None)
        return read

    monkeypatch.setattr(reading, "lean_list", watched)
    limited = app_settings.model_copy(update={"db_pool_size": 2, "rate_limit_enabled": False})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(limited), host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    token = bearer(app_settings, A.rfc)["Authorization"]
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        for _ in range(6):  # three times the pool
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                f"GET /v1/avisos.ndjson?limite=10000 HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n\r\n".encode()
            )
            received = b""
            while received.count(b'"folio"') < 10:
                received += await reader.read(64 * 1024)
            assert received.startswith(b"HTTP/1.1 200 "), received[:300]
            writer.transport.abort()
        pool = pools[0]
        for _ in range(100):
            if pool.get_idle_size() == pool.get_size():
                break
            await asyncio.sleep(0.05)
        assert pool.get_idle_size() == pool.get_size(), "a page's connection was never given back"
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": token}) as client:
            for _ in range(4):
                response = await client.get("/v1/avisos.ndjson", params={"limite": 5000})
                assert response.status_code == 200 and response.content.endswith(b'{"fin":true,"hay_mas":true}\n')
        assert outcomes == [True] * 10, "the lean path served every page, the abandoned ones too"
    finally:
        server.should_exit = True
        # Bounded: a connection never given back would also hold the pool's close, and the shutdown, for ever.
        await asyncio.wait_for(serving, timeout=30)


async def test_the_hot_statement_reads_only_its_page_however_few_avisos_the_planner_expects(
    connection, tmp_path, database_url
):
    """The lean pool plans its statement once per connection, as a generic plan: for an employer it expects the
    table's rows ÷ its employers, and the relationship's NRP condition (a join filter with OR) shrinks that to a
    few dozen, fewer than a page. Even with statistics fresh from ANALYZE, the plan was then a bitmap scan of every
    aviso of the employer and a sort, on every page: all 2,000 here, and so for a large employer among many small
    ones. The pool's planner settings leave it one plan, the index's order up to the LIMIT."""
    old, new = f.patrones(2)
    await _load_registry(connection, tmp_path, [old, new])
    for employer, count, seed_ in ((old, 3000, 1), (new, 2000, 2)):
        path = f.write_ndjson(tmp_path / f"{employer.rfc}.ndjson", f.avisos(count, [employer], seed=seed_))
        await loaders.load_avisos(connection, path, today=f.TODAY)
    await connection.execute(text("ANALYZE aviso"))
    rfc = new.rfc
    await connection.execute(Credencial.__table__.insert().values(**credential(rfc)))
    await connection.execute(CERTIFICACION.insert().values(**certification(rfc)))
    database = Database.connect(database_url)
    try:
        await database.open_lean_pool(database_url, 1, Timeouts())
        assert database.lean_pool is not None
        async with database.lean_pool.acquire() as lean:
            started_with = {
                name: await lean.fetchval(f"SELECT current_setting('{name}')") for name in LEAN_POOL_PLANNING
            }
    finally:
        await database.dispose()
    assert started_with == LEAN_POOL_PLANNING, "what the lean pool's connections plan with"
    for name, value in LEAN_POOL_PLANNING.items():  # the same, in this test's transaction (its data is uncommitted)
        await connection.execute(text(f"SET LOCAL {name} = '{value}'"))
    values = {
        **sql._LEAN_PAGE_CONSTANTS,
        **dict(rfc=rfc, credencial_id=credential_id(rfc), patron=rfc, nrps=None, despues_de=None, filas=101),
        "at": dt.datetime.now(dt.UTC),
    }
    raw = await connection.get_raw_connection()
    assert raw.driver_connection is not None
    plan = await raw.driver_connection.fetchval(
        f"EXPLAIN (ANALYZE, FORMAT JSON) {sql.LEAN_PAGE_SQL}", *(values[n] for n in sql._LEAN_PAGE_PARAMS)
    )

    def aviso_scans(node: dict) -> Iterator[dict]:
        if node.get("Relation Name") == "aviso":
            yield node
        for child in node.get("Plans", []):
            yield from aviso_scans(child)

    read = [node["Actual Rows"] for node in aviso_scans(plan[0]["Plan"])]  # json decoded by SQLAlchemy's codec
    assert read and max(read) <= 101, f"avisos read for a page of 100: {read}"
