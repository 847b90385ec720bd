"""Wake-ups survive PostgreSQL going away: the LISTEN connection comes back by itself, wakes every waiter when
it does (notifications sent meanwhile are lost), and /readyz tells whether it is listening."""

import asyncio
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx2
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.engine import make_url

from app import embedded
from app.db import asyncpg_dsn
from app.main import create_app
from app.notify import APPLICATION_NAME, CHANNEL, Notifier

RFC = "AAA010101AAA"


@pytest.fixture
def restartable() -> Iterator[object]:
    """A PostgreSQL of this test alone (in its own temporary folder), which the test stops and starts."""
    folder = Path(tempfile.mkdtemp(prefix="sia-restart-"))
    server = embedded.get_server(folder / "pgdata", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def restart(server) -> None:
    """pg_ctl stop -m fast (what a restart or a failover does to every connection), then start it again."""
    embedded._package().pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
    server.ensure_postgres_running()


async def notify(dsn: str, rfc: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, rfc)
    finally:
        await conn.close()


async def test_a_waiter_is_woken_by_a_notify_sent_after_postgresql_restarted(restartable):
    dsn = asyncpg_dsn(restartable.get_uri())
    notifier = Notifier()
    await notifier.start(dsn)
    try:
        await asyncio.to_thread(restart, restartable)  # the event loop (and the listener) keeps running
        waiting = asyncio.create_task(notifier.wait(RFC, 60))
        deadline = time.monotonic() + 20
        # A loader's NOTIFY, repeated until it is heard: the listener needs a moment to notice and reconnect.
        while not waiting.done() and time.monotonic() < deadline:
            await notify(dsn, RFC)
            await asyncio.sleep(0.5)
        assert waiting.done(), "no NOTIFY reached the waiter in the 20 s after PostgreSQL restarted"
        assert notifier.state == "escuchando" and notifier.reconnections == 1
    finally:
        await notifier.stop()


async def test_a_waiter_blocked_across_the_restart_is_woken_when_the_listener_is_back(restartable, caplog):
    """What was notified while the listener was away is lost: every waiter re-checks once it is back."""
    dsn = asyncpg_dsn(restartable.get_uri())
    notifier = Notifier()
    await notifier.start(dsn)
    try:
        waiting = asyncio.create_task(notifier.wait(RFC, 60))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="app.notify"):
            await asyncio.to_thread(restart, restartable)
            await asyncio.wait_for(waiting, timeout=20)  # no NOTIFY at all: the reconnection itself wakes it
        print(f"\nwoken {time.monotonic() - started:.1f} s after the restart began (stop + start + reconnect)")
        assert "connection lost" in caplog.text and "re-established; waking 1 waiting" in caplog.text
    finally:
        await notifier.stop()


async def _readyz(client: httpx2.AsyncClient) -> dict:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    return response.json()


async def _until(client: httpx2.AsyncClient, state: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while (current := (await _readyz(client))["notificaciones"]) != state:
        assert time.monotonic() < deadline, f"/readyz still says notificaciones={current}, not {state}"
        await asyncio.sleep(0.1)


@pytest.fixture
def own_database(new_database) -> str:
    return new_database()


async def test_readyz_reports_the_listener_lost_and_back(settings, own_database, server_url):
    """The database stays up (readyz answers through its pool) while the listener cannot reconnect: the
    database refuses new connections and the listener's backend is terminated."""
    url = own_database
    database = make_url(url).database
    admin = await asyncpg.connect(asyncpg_dsn(server_url))
    app = create_app(settings.model_copy(update={"database_url": url}))
    try:
        async with (
            LifespanManager(app) as manager,
            httpx2.AsyncClient(transport=httpx2.ASGITransport(app=manager.app), base_url="http://t") as client,
        ):
            assert (await _readyz(client))["notificaciones"] == "escuchando"
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1 AND application_name LIKE $2 || ' %'",
                database,
                APPLICATION_NAME,
            )
            assert killed == 1
            await _until(client, "reconectando")
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            await _until(client, "escuchando")
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await admin.close()
