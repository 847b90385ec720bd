"""POST /v1/token under attack (DESIGN §5): a flood of random client_ids, a stranger trying to lock an owner out,
a crowd of concurrent TOTP guesses. Against a committed database and the app's own sessions, because the
defences are locks and commits that a rolled-back test transaction would hide."""

import asyncio
import datetime as dt
import secrets
import threading
import time
import uuid

import httpx2
import pytest
import time_machine
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import async_url
from app.main import create_app
from app.models import Credencial
from app.security import passwords, totp
from tests import documented_problems

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
OWNER = "EKU9003173C9"
PASSWORD = "la-contrasena-correcta-que-llego-por-correo-0123456789"
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


@pytest.fixture
def db_url(new_database, settings) -> str:
    url = new_database()

    async def owner() -> None:
        engine = create_async_engine(async_url(url))
        async with engine.begin() as conn:
            await conn.execute(
                Credencial.__table__.insert().values(
                    id=uuid.uuid4(),
                    rfc=OWNER,
                    correo="nomina@example.com",
                    nombre="EL DUEÑO",
                    hash_contrasena=await passwords.hash_password(PASSWORD),
                    totp_cifrado=totp.encrypt(SECRET, settings.totp_encryption_key.get_secret_value()),
                    estado="activa",
                    certificado_numero="1",
                    creada_en=NOW,
                )
            )
        await engine.dispose()

    asyncio.run(owner())
    return url


@pytest.fixture
def app_settings(settings, db_url, tmp_path):
    return settings.model_copy(update={"database_url": db_url, "data_dir": tmp_path})


async def _count(db_url: str, sql: str) -> int:
    engine = create_async_engine(async_url(db_url))
    async with engine.connect() as conn:
        value = await conn.scalar(text(sql))
    await engine.dispose()
    return value


class Service:
    """The real app; `from_ip` gives a client whose requests come from that address."""

    def __init__(self, app) -> None:
        self.app = app

    def from_ip(self, ip: str) -> httpx2.AsyncClient:
        transport = httpx2.ASGITransport(app=self.app, client=(ip, 40000), raise_app_exceptions=False)
        return httpx2.AsyncClient(
            transport=transport, base_url="http://testserver", timeout=60, event_hooks=documented_problems.event_hooks()
        )


@pytest.fixture
async def service(app_settings):
    async with LifespanManager(create_app(app_settings)) as manager:
        yield Service(manager.app)


def _form(rfc: str, password: str, code: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": rfc, "client_secret": password, "otp": code}


def _wrong_code() -> str:
    right = {totp.current_code(SECRET, NOW + dt.timedelta(seconds=s)) for s in (-30, 0, 30)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in right)


@pytest.fixture
def verifications(monkeypatch) -> list[str]:
    """Every Argon2 verification the service runs (its hash argument)."""
    calls: list[str] = []
    real = passwords._hasher.verify
    monkeypatch.setattr(passwords._hasher, "verify", lambda p, h: calls.append(h) or real(p, h))
    return calls


async def test_random_client_ids_from_one_address_are_stopped_before_argon2(service, db_url, verifications):
    """The old limit was keyed on client_id + IP: every random client_id got a fresh budget, an Argon2 verify and
    a lockout row."""
    answers = []
    async with service.from_ip("203.0.113.7") as client:
        for _ in range(150):
            rfc = "XAX" + secrets.token_hex(5).upper()[:10]
            answers.append(await client.post("/v1/token", data=_form(rfc, "adivinanza", "123456")))
    statuses = [a.status_code for a in answers]
    before_first_429 = statuses.index(429) if 429 in statuses else len(statuses)
    print(f"\nrandom client_ids: {before_first_429} answered before the first 429, {len(verifications)} Argon2")
    assert before_first_429 <= 10 and set(statuses[before_first_429:]) == {429}
    assert len(verifications) == before_first_429, "a refused request does no Argon2 work"
    refused = answers[-1]
    assert refused.json()["error"] == "invalid_client" and int(refused.headers["retry-after"]) >= 1
    assert await _count(db_url, "SELECT count(*) FROM bloqueo_token") == 0, "no row for an RFC without credential"
    # Another address is not affected, and neither is the owner there.
    async with service.from_ip("198.51.100.20") as other:
        ok = await other.post("/v1/token", data=_form(OWNER, PASSWORD, totp.current_code(SECRET)))
    assert ok.status_code == 200, ok.text


@pytest.fixture
def generous(app_settings):
    """Budgets out of the way, so that what is left to observe is the cap or the lock."""
    return app_settings.model_copy(
        update={
            "rate_limit_token": "1000/minute",
            "rate_limit_token_ip": "1000/minute",
            "rate_limit_token_fallos": "1000/minute",
        }
    )


async def test_concurrent_verifications_are_capped_and_the_rest_refused_at_once(generous, monkeypatch):
    capped = generous.model_copy(update={"password_verifications_max": 2})
    running, peak, lock = 0, 0, threading.Lock()
    real = passwords._hasher.verify

    def slow_verify(password, hashed):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            time.sleep(0.3)  # a slow Argon2, so that the requests overlap
            return real(password, hashed)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(passwords._hasher, "verify", slow_verify)
    async with LifespanManager(create_app(capped)) as manager:
        async with Service(manager.app).from_ip("203.0.113.7") as client:
            answers = await asyncio.gather(
                *(client.post("/v1/token", data=_form(f"XAXX01010{n:04d}", "adivinanza", "123456")) for n in range(10))
            )
    statuses = sorted(a.status_code for a in answers)
    assert peak <= 2, f"{peak} Argon2 verifications ran at once"
    assert 503 in statuses and set(statuses) <= {401, 503}, statuses
    busy = next(a for a in answers if a.status_code == 503)
    assert busy.json()["error"] == "temporarily_unavailable" and busy.headers["retry-after"] == "1"


async def test_a_stranger_with_wrong_passwords_cannot_lock_the_owner_out(service, db_url, app_settings):
    async with service.from_ip("203.0.113.7") as stranger:
        answers = [
            await stranger.post("/v1/token", data=_form(OWNER, "no-la-se", "123456"))
            for _ in range(3 * app_settings.totp_max_failures)
        ]
    assert {a.status_code for a in answers} <= {401, 429}
    assert await _count(db_url, "SELECT count(*) FROM bloqueo_token") == 0
    async with service.from_ip("198.51.100.20") as owner:
        response = await owner.post("/v1/token", data=_form(OWNER, PASSWORD, totp.current_code(SECRET)))
    assert response.status_code == 200, response.text


async def test_wrong_password_looks_the_same_whether_or_not_the_owner_is_locked(service, app_settings):
    async with service.from_ip("198.51.100.20") as owner, service.from_ip("203.0.113.7") as stranger:
        before = await stranger.post("/v1/token", data=_form(OWNER, "no-la-se", "123456"))
        for _ in range(app_settings.totp_max_failures):
            assert (await owner.post("/v1/token", data=_form(OWNER, PASSWORD, _wrong_code()))).status_code == 401
        locked = await owner.post("/v1/token", data=_form(OWNER, PASSWORD, totp.current_code(SECRET)))
        after = await stranger.post("/v1/token", data=_form(OWNER, "no-la-se", "123456"))
    assert locked.status_code == 429, "TOTP guesses with the right password do lock the RFC"
    assert before.status_code == after.status_code == 401 and before.json() == after.json()


async def test_concurrent_wrong_codes_with_the_right_password_check_at_most_the_limit(generous, db_url, monkeypatch):
    checked = []
    real = totp.matched_step
    monkeypatch.setattr(totp, "matched_step", lambda *a: checked.append(a[1]) or real(*a))
    code = _wrong_code()
    async with LifespanManager(create_app(generous.model_copy(update={"password_verifications_max": 32}))) as m:
        async with Service(m.app).from_ip("198.51.100.20") as owner:
            answers = await asyncio.gather(
                *(owner.post("/v1/token", data=_form(OWNER, PASSWORD, code)) for _ in range(25))
            )
    statuses = sorted(a.status_code for a in answers)
    print(f"\n25 concurrent wrong codes with the right password: {len(checked)} checked; answers {statuses}")
    assert len(checked) <= generous.totp_max_failures
    assert statuses.count(401) == len(checked) and statuses.count(429) == 25 - len(checked)
