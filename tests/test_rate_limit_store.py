"""Rate limits that mean the same with N processes: counted in a shared Valkey/Redis when SIA_RATE_LIMIT_STORAGE
names one (a real server, started by the test run), in each process's memory otherwise."""

import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx2
import pytest
import redis.asyncio
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.settings import Settings
from tests import documented_problems
from tests import factories as f

RULE = "20/minute"  # the e.firma budget per source address, as shipped


@asynccontextmanager
async def instances(settings: Settings, count: int = 2) -> AsyncIterator[list[httpx2.AsyncClient]]:
    """`count` separate apps, as N workers or replicas are: each its own lifespan and its own limiter."""
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(count):
            manager = await stack.enter_async_context(LifespanManager(create_app(settings)))
            transport = httpx2.ASGITransport(app=manager.app)
            hooks = documented_problems.event_hooks()
            clients.append(
                await stack.enter_async_context(
                    httpx2.AsyncClient(transport=transport, base_url="http://t", event_hooks=hooks)
                )
            )
        yield clients


async def ask_for_challenges(clients: list[httpx2.AsyncClient], total: int) -> list[httpx2.Response]:
    """`total` challenges from one address, spread over the instances in turn, as a load balancer would."""
    rfc = f.patrones(1)[0].rfc
    return [await clients[i % len(clients)].post("/v1/efirma/retos", json={"rfc": rfc}) for i in range(total)]


@pytest.fixture
def settings(settings: Settings, new_database) -> Settings:
    """A database of this module's own: the challenges these tests ask for are committed, and other tests count
    the challenges of theirs."""
    return settings.model_copy(update={"database_url": new_database()})


@pytest.fixture
async def store(kv_store_url: str) -> str:
    client = redis.asyncio.from_url(kv_store_url)
    await client.flushdb()  # every test starts with no counts of another
    await client.aclose()
    return kv_store_url


async def test_two_instances_share_one_budget_through_the_store(settings, store):
    shared = settings.model_copy(update={"rate_limit_storage": store, "rate_limit_efirma": RULE})
    async with instances(shared) as clients:
        answers = await ask_for_challenges(clients, 22)
    assert [a.status_code for a in answers[:20]] == [201] * 20
    # 20/minute stays 20 across both: the 21st and the 22nd are refused, whichever instance they reach.
    assert [a.status_code for a in answers[20:]] == [429, 429]
    assert {a.json()["code"] for a in answers[20:]} == {"limite_de_tasa"}
    assert 0 < int(answers[20].headers["retry-after"]) <= 60
    # The one count both see: the refusal's RateLimit header has no room left.
    assert answers[21].headers["ratelimit"].startswith(f'"{RULE}";r=0')


async def test_without_a_store_each_process_counts_alone(settings):
    """The documented difference: with no shared store the budget is per process (here, twice the rule)."""
    local = settings.model_copy(update={"rate_limit_storage": None, "rate_limit_efirma": RULE})
    async with instances(local) as clients:
        answers = await ask_for_challenges(clients, 42)
    assert [a.status_code for a in answers[:40]] == [201] * 40
    assert [a.status_code for a in answers[40:]] == [429, 429]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again on return: nothing listens there


async def test_a_store_that_does_not_answer_falls_back_to_a_count_per_process(settings, caplog):
    """A store outage is neither an outage of the service (500s) nor a license to guess without limit."""
    down = settings.model_copy(
        update={"rate_limit_storage": f"redis://127.0.0.1:{_closed_port()}/0", "rate_limit_efirma": RULE}
    )
    async with instances(down, count=1) as [client]:
        answers = await ask_for_challenges([client], 21)
        ready = (await client.get("/readyz")).json()
    assert [a.status_code for a in answers] == [201] * 20 + [429]
    assert ready["limites_de_tasa"] == "local_por_falla"
    assert "rate-limit store unavailable" in caplog.text


async def test_readyz_says_where_the_counts_live(settings, store):
    for storage, expected in ((store, "compartido"), (None, "local")):
        async with instances(settings.model_copy(update={"rate_limit_storage": storage}), count=1) as [client]:
            assert (await client.get("/readyz")).json()["limites_de_tasa"] == expected


@pytest.mark.parametrize("uri", ["memcached://127.0.0.1:11211", "127.0.0.1:6379", "redis://"])
def test_settings_refuse_a_store_they_cannot_use(uri):
    with pytest.raises(ValueError, match="almacén de límites no admitido"):
        Settings(rate_limit_storage=uri)


def test_valkey_urls_are_accepted():
    assert Settings(rate_limit_storage="valkey://cache.interna:6379/2").rate_limit_storage
