"""Where one small authenticated page spends its round trips and its CPU.

    python -m bench.profile_page [--requests 300] [--avisos 2000]

Builds its own small database (an embedded PostgreSQL in .bench/profile, or the server DATABASE_URL names),
serves the app in this process through httpx's ASGI transport and asks GET /v1/avisos?limite=100 as the
employer itself (certified), one request at a time:

- round trips: the app's database connections go through a TCP relay (in a thread) that counts each time a
  client speaks again after the server answered; divided by the requests;
- CPU: the process's CPU time per request (the in-process client included), and for each piece the issue
  names the CPU time from its call to its end: requests run one at a time, so what the process does meanwhile
  (the driver, the event loop) is that piece's doing. cProfile is not used: it misattributes coroutines
  resumed through SQLAlchemy's greenlets.
"""

import argparse
import asyncio
import datetime as dt
import importlib
import inspect
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
from asgi_lifespan import LifespanManager
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app import loaders, migrations
from app.catalogs import sync_catalogs
from app.db import async_url, asyncpg_dsn
from app.demo import write_demo_files
from app.embedded import database_url
from app.main import create_app
from app.settings import Settings

# The pieces of a page worth timing apart: (label, where the request path calls it: module:attribute | alternative).
PIECES = [
    ("audit (_audit)", "app.avisos.reading:_audit | app.routers.avisos:_audit"),
    ("credential query (AsyncSession.scalar)", "sqlalchemy.ext.asyncio:AsyncSession.scalar"),
    # Before the verified-token cache the caller verified itself; after it, through the cache.
    (
        "token verify",
        "app.security.token_cache:VerifiedTokens.verify | app.deps:verify_access_token | app.security.caller:verify_access_token",
    ),
    ("authorize()", "app.avisos.reading:authorize | app.routers.avisos:authorize"),
    ("blocks of the page (stream_page)", "app.avisos.reading:stream_page | app.avisos:stream_page"),
    # The lean path (app.routers.avisos.LeanListing): the whole read, and its one statement within it.
    ("lean read (reading.lean_list)", "app.avisos.reading:lean_list"),
    ("  its statement (sql.lean_page)", "app.avisos.sql:lean_page"),
]
SPENT: dict[str, float] = {}


def _first_found(where: str) -> tuple[Any, str]:
    """The (object, attribute name) of the first "module:Attr.path" alternative this checkout has."""
    for candidate in where.split(" | "):
        module_name, attribute = candidate.split(":")
        try:
            owner: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part, None)
        if owner is not None and hasattr(owner, name):
            return owner, name
    raise LookupError(where)


def _time_pieces() -> None:
    """Wraps each piece so that the process CPU time from its call to its end is added to SPENT: requests run
    one at a time, so whatever the process does meanwhile (the driver, the event loop) is that piece's doing."""
    for label, where in PIECES:
        owner, name = _first_found(where)
        original = getattr(owner, name)
        SPENT[label] = 0.0
        if inspect.isasyncgenfunction(original):

            async def generator(*args: Any, __f: Any = original, __label: str = label, **kwargs: Any) -> Any:
                started = time.process_time()
                try:
                    async for item in __f(*args, **kwargs):
                        yield item
                finally:
                    SPENT[__label] += time.process_time() - started

            setattr(owner, name, generator)
        elif inspect.iscoroutinefunction(original):

            async def coroutine(*args: Any, __f: Any = original, __label: str = label, **kwargs: Any) -> Any:
                started = time.process_time()
                try:
                    return await __f(*args, **kwargs)
                finally:
                    SPENT[__label] += time.process_time() - started

            setattr(owner, name, coroutine)
        else:

            def function(*args: Any, __f: Any = original, __label: str = label, **kwargs: Any) -> Any:
                started = time.process_time()
                try:
                    return __f(*args, **kwargs)
                finally:
                    SPENT[__label] += time.process_time() - started

            setattr(owner, name, function)


class Relay:
    """A TCP relay to PostgreSQL that counts round trips: each burst the client sends after the server spoke."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        socket_dir = parsed.query.get("host")
        port = parsed.port or 5432
        # The embedded server listens on a unix socket only (its folder is the URL's host parameter).
        self.target: str | tuple[str, int] = (
            f"{socket_dir}/.s.PGSQL.{port}" if isinstance(socket_dir, str) else (parsed.host or "127.0.0.1", port)
        )
        self.round_trips = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self._listener.accept()
            if isinstance(self.target, str):
                server = socket.socket(socket.AF_UNIX)
                server.connect(self.target)
            else:
                server = socket.create_connection(self.target)
                server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            state = {"last": "server"}
            threading.Thread(target=self._pump, args=(client, server, state, "client"), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, state, "server"), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, state: dict, side: str) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if side == "client" and state["last"] == "server":
                        self.round_trips += 1
                    state["last"] = side
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


async def _prepare(url: str, folder: Path) -> str:
    """A migrated database with one employer's avisos; returns that employer's RFC."""
    engine = create_async_engine(async_url(url), poolclass=NullPool)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        if not await conn.fetchval("SELECT count(*) FROM aviso"):
            patrones_csv, avisos_ndjson = write_demo_files(
                folder, avisos=ARGS.avisos, patrones=1, seed=11, hasta=dt.date(2026, 11, 1)
            )
            async with engine.begin() as sa:
                await sync_catalogs(sa)
                await loaders.load_patrones(sa, patrones_csv)
            async with engine.begin() as sa:
                await loaders.load_avisos(sa, avisos_ndjson)
        return await conn.fetchval("SELECT rfc_patron FROM aviso LIMIT 1")
    finally:
        await conn.close()
        await engine.dispose()


@contextmanager
def _database() -> Iterator[tuple[Settings, str]]:
    settings = Settings(data_dir=Path(".bench/profile").resolve())
    with database_url(settings) as server_url:
        url = make_url(server_url).set(database="sia_profile").render_as_string(hide_password=False)

        async def create() -> None:
            conn = await asyncpg.connect(asyncpg_dsn(server_url))
            try:
                if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'sia_profile'"):
                    await conn.execute("CREATE DATABASE sia_profile")
            finally:
                await conn.close()

        asyncio.run(create())
        migrations.upgrade(url)
        yield settings, url


async def _serve(settings: Settings, url: str, token: str, requests: int) -> float:
    """Asks the page `requests` times (after a warm-up); returns in-process CPU seconds per request."""
    app = create_app(settings.model_copy(update={"database_url": url}))
    async with LifespanManager(app) as manager:
        transport = httpx2.ASGITransport(app=manager.app)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx2.AsyncClient(transport=transport, base_url="http://profile", headers=headers) as client:

            async def page() -> None:
                response = await client.get("/v1/avisos", params={"limite": 100})
                assert response.status_code == 200, response.text
                assert len(response.json()["avisos"]) == 100

            for _ in range(30):
                await page()
            await asyncio.sleep(0.3)  # anything the warm-up left in flight (a batched audit flush) settles
            if RELAY is not None:
                RELAY.round_trips = 0
            for label in SPENT:
                SPENT[label] = 0.0
            cpu = time.process_time()
            for _ in range(requests):
                await page()
            await asyncio.sleep(0.3)  # a background writer's flush belongs to these requests
            cpu = time.process_time() - cpu
    return cpu / requests


RELAY: Relay | None = None


def main() -> None:
    global RELAY
    from bench.__main__ import _token  # the bench's own certified employer credential

    with _database() as (settings, url):
        with tempfile.TemporaryDirectory() as folder:
            rfc = asyncio.run(_prepare(url, Path(folder)))
        settings = settings.model_copy(update={"rate_limit_enabled": False, "access_log": False})
        token = _token(settings, url, rfc)
        RELAY = Relay(url)
        relayed = make_url(url).set(host="127.0.0.1", port=RELAY.port, query={}).render_as_string(hide_password=False)
        asyncio.run(_serve(settings, relayed, token, ARGS.requests))
        round_trips = RELAY.round_trips / ARGS.requests
        RELAY = None
        plain = asyncio.run(_serve(settings, url, token, ARGS.requests))
        _time_pieces()
        timed = asyncio.run(_serve(settings, url, token, ARGS.requests))

    print(f"GET /v1/avisos?limite=100, {ARGS.requests} requests one at a time, {ARGS.avisos} avisos in the table")
    print(f"round trips to PostgreSQL per request: {round_trips:.2f}")
    print(f"in-process CPU per request (client included): {plain * 1000:.2f} ms ({timed * 1000:.2f} ms timed)")
    print("CPU per request from each piece's call to its end:")
    for label, spent in SPENT.items():
        print(f"  {label:<42} {spent / ARGS.requests * 1000:7.3f} ms")


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--requests", type=int, default=300)
parser.add_argument("--avisos", type=int, default=2000)
ARGS = parser.parse_args([])

if __name__ == "__main__":
    ARGS = parser.parse_args()
    main()
