"""One PostgreSQL per run (embedded, or the server DATABASE_URL names), migrated once into a template
database; each test runs in a transaction that is rolled back."""

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import asyncpg
import httpx2
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine

from app import embedded, migrations
from app.catalogs import sync_catalogs
from app.db import async_url, asyncpg_dsn
from app.deps import committed, get_session
from app.main import create_app
from app.settings import Settings
from tests import browser, documented_problems, kv_store

REPO = Path(__file__).resolve().parents[1]


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def _admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def _server() -> Iterator[str]:
    """The PostgreSQL server of this run: DATABASE_URL's, or an embedded one in a temporary folder."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    folder = Path(tempfile.mkdtemp(prefix="sia-test-"))
    server = embedded.get_server(folder / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _template(server_url: str) -> Iterator[str]:
    """A database migrated once, with the catalogs; other databases are copied from it."""
    name = f"sia_test_{os.getpid()}_template"
    asyncio.run(_admin(server_url, f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"))
    url = _with_database(server_url, name)
    migrations.upgrade(url)

    async def catalogs() -> None:
        engine = create_async_engine(async_url(url))
        async with engine.begin() as conn:
            await sync_catalogs(conn)
        await engine.dispose()

    asyncio.run(catalogs())
    try:
        yield name
    finally:
        asyncio.run(_admin(server_url, f"DROP DATABASE IF EXISTS {name}"))


# pytest-xdist (`make test` runs two workers): the controller starts the run's one PostgreSQL and migrates the
# one template before the first worker starts; the workers copy their databases from that template.
_SHARED = pytest.StashKey[tuple[str, str]]()
_SHARED_STACK = pytest.StashKey[ExitStack]()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    config = node.config
    if _SHARED not in config.stash:
        stack = config.stash[_SHARED_STACK] = ExitStack()
        server_url = stack.enter_context(_server())
        config.stash[_SHARED] = (server_url, stack.enter_context(_template(server_url)))
    node.workerinput["sia_server_url"], node.workerinput["sia_template"] = config.stash[_SHARED]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with a slow test first: `--dist loadfile` hands files out in this order, so the minute-long ones start
    at once on both workers instead of one of them running alone at the end (~1 minute of a run)."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SHARED_STACK in config.stash:
        config.stash[_SHARED_STACK].close()


@pytest.fixture(scope="session")
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    shared = getattr(request.config, "workerinput", {})
    if "sia_server_url" in shared:
        yield shared["sia_server_url"]
        return
    with _server() as url:
        yield url


@pytest.fixture(scope="session")
def template_database(request: pytest.FixtureRequest, server_url: str) -> Iterator[str]:
    shared = getattr(request.config, "workerinput", {})
    if "sia_template" in shared:
        yield shared["sia_template"]
        return
    with _template(server_url) as name:
        yield name


@pytest.fixture(scope="session")
def new_database(server_url: str, template_database: str) -> Iterator[Callable[..., str]]:
    """Factory: a new database (migrated, from the template, or empty) whose URL a test may commit to."""
    created: list[str] = []

    def make(*, migrated: bool = True, template: str | None = None) -> str:
        """template: the URL of a database (with no open connection) to copy, data included."""
        name = f"sia_test_{uuid.uuid4().hex[:12]}"
        source = make_url(template).database if template else template_database
        template = f" TEMPLATE {source}" if migrated else ""
        asyncio.run(_admin(server_url, f"CREATE DATABASE {name}{template}"))
        created.append(name)
        return _with_database(server_url, name)

    yield make
    for name in created:
        asyncio.run(_admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="session")
def database_url(new_database: Callable[..., str]) -> str:
    return new_database()


@pytest.fixture(scope="session")
def sat() -> Path:
    """SAT's public test e.firma files and CAs, shipped in the repository (tests/data/sat/README.md)."""
    return REPO / "tests" / "data" / "sat"


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory, sat: Path) -> Settings:
    trust = tmp_path_factory.mktemp("trust")
    for ca in (sat / "ca").iterdir():
        shutil.copy(ca, trust / ca.name)
    return Settings(
        database_url=database_url, env="test", data_dir=tmp_path_factory.mktemp("data"), efirma_trust_dir=trust
    )


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(async_url(database_url), pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that is rolled back after the test."""
    async with engine.connect() as conn:
        transaction = await conn.begin()
        try:
            yield conn
        finally:
            await transaction.rollback()


@pytest.fixture
async def session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(bind=connection, join_transaction_mode="create_savepoint") as session:
        yield session


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    """The settings of the app under test; a test module overrides this fixture to change them."""
    return settings


@pytest.fixture
def app(app_settings: Settings, connection: AsyncConnection):
    app = create_app(app_settings)

    async def session_in_test_transaction() -> AsyncIterator[AsyncSession]:
        # The app's commit contract (app.deps.committed) on a savepoint: a commit releases it, a rollback undoes
        # it, and the test's rollback undoes everything.
        async with (
            AsyncSession(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False) as session,
            committed(session),
        ):
            yield session

    app.dependency_overrides[get_session] = session_in_test_transaction
    return app


@pytest.fixture
async def client(app) -> AsyncIterator[httpx2.AsyncClient]:
    # The lifespan runs (key rings, settings in the request state); the session is the test's.
    async with LifespanManager(app) as manager:
        transport = httpx2.ASGITransport(app=manager.app, raise_app_exceptions=False)
        hooks = documented_problems.event_hooks()
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver", event_hooks=hooks) as client:
            yield client


def _tell(request: pytest.FixtureRequest, text: str) -> None:
    """On the terminal even while pytest captures output."""
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print(f"\n{text}", flush=True)


@pytest.fixture(scope="session")
def chromium(request: pytest.FixtureRequest) -> Path:
    """Debian's Chromium for the browser tests, installed if need be; when it cannot be, they skip, loudly."""
    if not browser.CHROMIUM.exists():
        _tell(request, f"{browser.CHROMIUM} is missing: installing Debian's chromium with apt-get (may take a minute)")
    reason = browser.install_chromium()
    if reason:
        message = f"CHROMIUM UNAVAILABLE: the browser tests DID NOT RUN. {reason}"
        _tell(request, f"{'!' * 100}\n{message}\n{'!' * 100}")
        pytest.skip(message)
    return browser.CHROMIUM


@pytest.fixture(scope="session")
def kv_store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Valkey or Redis server of this run (Debian's package, installed if need be); when it cannot be, the tests
    of the shared rate-limit store skip, loudly."""
    if kv_store.find_server() is None:
        _tell(request, "valkey-server/redis-server is missing: installing it with apt-get (may take a minute)")
    server, reason = kv_store.install_server()
    if server is None:
        message = f"VALKEY/REDIS UNAVAILABLE: the shared rate-limit tests DID NOT RUN. {reason}"
        _tell(request, f"{'!' * 100}\n{message}\n{'!' * 100}")
        pytest.skip(message)
    with kv_store.running_server(server, tmp_path_factory.mktemp("kv")) as url:
        yield url
