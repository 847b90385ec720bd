"""A database that restarts, stops, or is locked gives a fast 503 with Retry-After, never a 500 or a hang.

These tests run a PostgreSQL of their own (embedded, in a temporary folder), because they stop and restart it;
the suite's shared server is never touched."""

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx2
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app import embedded, migrations
from app.catalogs import sync_catalogs
from app.db import async_url, asyncpg_dsn
from app.main import create_app
from app.problems import PROBLEM_MEDIA_TYPE
from app.settings import Settings
from tests import documented_problems
from tests.avisos_world import CERTIFICACION, A, bearer, certification, seed

# Longer than any answer of these tests should take: the lock is held this long, so an answer before it is
# released is one the timeouts gave, not one the lock's end allowed.
LOCK_HELD_SECONDS = 8


class Server:
    """A PostgreSQL this module may stop and start (same folder, same socket, same URL)."""

    def __init__(self, folder: Path) -> None:
        self.pgdata = folder / "pgdata"
        self.server = embedded.get_server(self.pgdata, cleanup_mode="delete")
        self.url = self.server.get_uri()

    def stop(self) -> None:
        embedded._package().pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()
        assert self.server.get_uri() == self.url


@pytest.fixture(scope="module")
def own_server() -> Iterator[Server]:
    folder = Path(tempfile.mkdtemp(prefix="sia-outage-"))
    server = Server(folder)
    try:
        migrations.upgrade(server.url)
        yield server
    finally:
        try:
            server.start()  # a test that failed half-way may have left it stopped: cleanup needs it running
        finally:
            server.server.cleanup()
            shutil.rmtree(folder, ignore_errors=True)


def outage_settings(url: str, tmp_path: Path, **overrides) -> Settings:
    return Settings(database_url=url, env="test", data_dir=tmp_path, rate_limit_enabled=False, **overrides)


@pytest.fixture
async def service(
    own_server: Server, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[httpx2.AsyncClient]:
    overrides = getattr(request, "param", {})
    app = create_app(outage_settings(own_server.url, tmp_path, **overrides))
    async with LifespanManager(app) as manager:
        transport = httpx2.ASGITransport(app=manager.app, raise_app_exceptions=False)
        hooks = documented_problems.event_hooks()
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver", event_hooks=hooks) as client:
            yield client


def assert_unavailable(response: httpx2.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["code"] == "base_de_datos_no_disponible"
    assert int(response.headers["Retry-After"]) >= 1


CATALOGO = "/v1/catalogos/tipos-aviso"  # a route that reads the database and needs no credential


@pytest.mark.slow
@pytest.mark.parametrize("service", [{"db_idle_ping_seconds": 0.2}], indirect=True)
async def test_first_request_after_a_postgresql_restart_is_not_a_500(own_server: Server, service):
    assert (await service.get(CATALOGO)).status_code == 200  # a pooled connection now exists
    own_server.stop()
    own_server.start()
    await asyncio.sleep(0.3)  # the pooled connection has been idle longer than db_idle_ping_seconds
    response = await service.get(CATALOGO)
    assert response.status_code == 200, response.text


@pytest.mark.slow
async def test_an_outage_is_a_503_with_retry_after_and_the_service_recovers(own_server: Server, service):
    assert (await service.get(CATALOGO)).status_code == 200
    own_server.stop()
    try:
        assert_unavailable(await service.get(CATALOGO))  # the pooled connection died with the server
        assert_unavailable(await service.get(CATALOGO))  # a new one cannot be opened
        assert_unavailable(await service.get("/readyz"))
    finally:
        own_server.start()
    assert (await service.get(CATALOGO)).status_code == 200
    assert (await service.get("/readyz")).status_code == 200


async def _hold_lock(url: str, table: str, taken: asyncio.Event, release: asyncio.Event) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with conn.transaction():
            await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            taken.set()
            async with asyncio.timeout(LOCK_HELD_SECONDS):
                await release.wait()
    except TimeoutError:
        pass
    finally:
        await conn.close()


async def _while_locked(url: str, table: str, requests):
    """Runs `requests` (a coroutine) while another connection holds an ACCESS EXCLUSIVE lock on `table`;
    fails if it has not answered by the time the lock is released."""
    taken, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(_hold_lock(url, table, taken, release))
    await taken.wait()
    try:
        async with asyncio.timeout(LOCK_HELD_SECONDS - 2):
            return await requests
    finally:
        release.set()
        await holder


@pytest.mark.slow
@pytest.mark.parametrize("service", [{"db_lock_timeout_seconds": 0.5}], indirect=True)
async def test_a_locked_table_gives_a_fast_503_not_a_hang(own_server: Server, service):
    response = await _while_locked(own_server.url, "tipo_aviso", service.get(CATALOGO))
    assert_unavailable(response)
    assert (await service.get(CATALOGO)).status_code == 200  # the lock is gone: served again


@pytest.mark.slow
async def test_readyz_answers_503_within_a_second_during_a_lock_storm(own_server: Server, service):
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await _while_locked(own_server.url, "alembic_version", service.get("/readyz"))
    elapsed = loop.time() - started
    assert_unavailable(response)
    print(f"/readyz answered 503 in {elapsed:.2f} s while alembic_version was locked")


@pytest.mark.slow
@pytest.mark.parametrize(
    "service",
    [{"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout_seconds": 0.3, "db_lock_timeout_seconds": 4}],
    indirect=True,
)
async def test_an_exhausted_pool_is_a_fast_503(own_server: Server, service):
    async def two_requests():
        # The first takes the only connection and waits on the lock; the second finds no free connection.
        first = asyncio.create_task(service.get(CATALOGO))
        await asyncio.sleep(0.2)
        second = await service.get(CATALOGO)
        ready = await service.get("/readyz")  # its own connection, not the exhausted pool
        return second, ready, await first

    second, ready, first = await _while_locked(own_server.url, "tipo_aviso", two_requests())
    assert_unavailable(second)
    assert ready.status_code == 200, ready.text
    assert_unavailable(first)  # lock_timeout


def test_only_database_failures_are_called_database_unavailable(tmp_path):
    from sqlalchemy import exc as sa_exc

    from app.db import is_unavailable

    try:
        (tmp_path / "no-such-folder" / "file").write_text("x")  # a failure of the service's own, not the database
    except OSError as e:
        assert not is_unavailable(e)
    assert is_unavailable(sa_exc.TimeoutError("QueuePool limit reached"))
    assert not is_unavailable(ValueError("a bug"))


@pytest.fixture(scope="module")
def avisos_server(own_server: Server) -> Server:
    """own_server with the avisos world in it, and employer A certified to read its own."""

    async def in_one_transaction(step) -> None:
        engine = create_async_engine(async_url(own_server.url), poolclass=NullPool)
        async with engine.begin() as conn:
            await step(conn)
        await engine.dispose()

    asyncio.run(in_one_transaction(sync_catalogs))
    seed(own_server.url)
    asyncio.run(in_one_transaction(lambda conn: conn.execute(CERTIFICACION.insert().values(**certification(A.rfc)))))
    return own_server


@pytest.mark.slow
@pytest.mark.parametrize("service", [{"db_lock_timeout_seconds": 0.5}], indirect=True)
async def test_a_page_whose_copy_cannot_run_is_a_503_not_a_cut_200(avisos_server: Server, service, tmp_path):
    """Issue 14.1: the COPY's connection and its first rows are had before the status line is sent, so a database
    that fails there (here the aviso table is locked past lock_timeout) answers a 503 with Retry-After, in
    both representations, instead of a 200 whose body is then cut."""
    who = bearer(outage_settings(avisos_server.url, tmp_path), A.rfc)

    async def pages():
        as_json = await service.get("/v1/avisos", params={"limite": 5}, headers=who)
        as_ndjson = await service.get("/v1/avisos.ndjson", params={"limite": 5}, headers=who)
        return as_json, as_ndjson

    for response in await _while_locked(avisos_server.url, "aviso", pages()):
        assert_unavailable(response)
    whole = await service.get("/v1/avisos.ndjson", params={"limite": 5}, headers=who)  # the lock is gone
    assert whole.status_code == 200 and whole.content.splitlines()[-1] == b'{"fin":true,"hay_mas":true}'
