"""Signing keys shared by every replica: a replica with its own empty data folder verifies every other's tokens,
and a rotation reaches every replica without a restart."""

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx2
import pytest
from asgi_lifespan import LifespanManager

from app.db import asyncpg_dsn
from app.keys_store import rotation_delay
from app.main import create_app
from app.security import tokens
from app.security.keys import KeyRing, load_keys, rotate
from app.settings import Settings
from tests import documented_problems

REFRESH = 0.2  # seconds between key refreshes in these tests
RFC = "EKU9003173C9"
ACUSE_AJENO = "/v1/acuses/ACU-20261124-0000000000"  # 404 to a valid token, 401 to a token not accepted


@pytest.fixture
async def shared_database(new_database) -> str:
    return await asyncio.to_thread(new_database)  # the factory runs its own event loop


def replica_settings(url: str, folder: Path) -> Settings:
    return Settings(database_url=url, env="test", data_dir=folder, keys_refresh_seconds=REFRESH)


@asynccontextmanager
async def replica(settings: Settings) -> AsyncIterator[httpx2.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx2.ASGITransport(app=manager.app, raise_app_exceptions=False)
        hooks = documented_problems.event_hooks()
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver", event_hooks=hooks) as client:
            yield client


async def active_credential(url: str) -> uuid.UUID:
    credential_id = uuid.uuid4()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(
            "INSERT INTO credencial (id, rfc, correo, hash_contrasena, totp_cifrado, estado, certificado_numero, "
            "creada_en) VALUES ($1, $2, 'nomina@example.com', 'x', '\\x00', 'activa', '1', now())",
            credential_id,
            RFC,
        )
    finally:
        await conn.close()
    return credential_id


def token_of(ring: KeyRing, settings: Settings, credential_id: uuid.UUID) -> dict[str, str]:
    token = tokens.issue_access_token(
        ring,
        sub=RFC,
        credencial_id=credential_id,
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        ttl=dt.timedelta(minutes=5),
        now=dt.datetime.now(dt.UTC),
    )
    return {"Authorization": f"Bearer {token}"}


async def test_a_replica_with_its_own_folder_accepts_another_replicas_tokens(shared_database, tmp_path):
    a = replica_settings(shared_database, tmp_path / "a")
    b = replica_settings(shared_database, tmp_path / "b")
    credential_id = await active_credential(shared_database)
    async with replica(a) as replica_a, replica(b) as replica_b:
        await asyncio.sleep(3 * REFRESH)  # a learns b's key on its next refresh (b learned a's on start)
        keys_a, keys_b = load_keys(a), load_keys(b)  # the same folders, so the same keys, as each replica's
        assert keys_a.tokens.active.kid != keys_b.tokens.active.kid
        for client, signer in ((replica_b, keys_a), (replica_a, keys_b)):
            response = await client.get(ACUSE_AJENO, headers=token_of(signer.tokens, a, credential_id))
            assert response.status_code == 404, response.text
            assert response.json()["code"] == "acuse_no_encontrado"
        published = {k["kid"] for k in (await replica_b.get("/.well-known/jwks.json")).json()["keys"]}
        assert {keys_a.tokens.active.kid, keys_a.sellos.active.kid} <= published


async def test_a_rotation_reaches_every_replica_without_a_restart(shared_database, tmp_path):
    a = replica_settings(shared_database, tmp_path / "a")
    b = replica_settings(shared_database, tmp_path / "b")
    credential_id = await active_credential(shared_database)
    async with replica(a) as replica_a, replica(b) as replica_b:
        old = load_keys(a).tokens.active
        new = rotate(a.keys_dir / "tokens", activate_after=rotation_delay(REFRESH))
        # Published at once (by a's next refresh), signing only after every replica has had time to learn it.
        assert load_keys(a).tokens.active.kid == old.kid
        await asyncio.sleep(rotation_delay(REFRESH).total_seconds() + REFRESH)
        assert load_keys(a).tokens.active.kid == new.kid
        # Two refreshes of each replica are the bound; a busy machine's event loops may run them late, so b's
        # document is polled briefly rather than read once.
        deadline = asyncio.get_running_loop().time() + 20 * REFRESH
        while True:
            published = {k["kid"] for k in (await replica_b.get("/.well-known/jwks.json")).json()["keys"]}
            if new.kid in published or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(REFRESH / 2)
        assert {old.kid, new.kid} <= published  # the old key stays until its tokens expire
        response = await replica_b.get(ACUSE_AJENO, headers=token_of(load_keys(a).tokens, a, credential_id))
        assert response.status_code == 404, response.text
        assert (await replica_a.get("/livez")).status_code == 200


def test_a_refresh_during_a_rotation_neither_fails_nor_misses_the_key(tmp_path):
    """The old rotate() created the .pem, then wrote it: a refresh in between raised (a 500) and recorded the
    folder's modification time, which the write does not change, so that replica never learned the key."""
    folder = tmp_path / "tokens"
    first = rotate(folder)
    ring = KeyRing(folder, retain=None)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    half_written = folder / f"{later:%Y%m%dT%H%M%S%fZ}-0000000000000000.pem"
    half_written.write_bytes(b"")  # the window of the old rotate(): created, not yet written
    assert ring.active.kid == first.kid  # no exception: the keys known so far keep signing

    second = rotate(tmp_path / "elsewhere")  # a whole key, written into the half-written file in place
    pem = next((tmp_path / "elsewhere").glob("*.pem")).read_bytes()
    half_written.write_bytes(pem)
    assert second.kid in {k.kid for k in ring.published(later)}


def test_rotate_writes_the_key_whole_or_not_at_all(tmp_path):
    folder = tmp_path / "tokens"
    key = rotate(folder)
    assert [p.name for p in folder.iterdir()] == [next(folder.glob("*.pem")).name]  # no partial file is left
    assert KeyRing(folder, retain=None).active.kid == key.kid


async def test_sia_keys_rotate_publishes_the_new_key_for_every_replica(shared_database, tmp_path):
    from tests.test_cli import sia

    env = {"SIA_DATA_DIR": str(tmp_path), "DATABASE_URL": shared_database, "SIA_KEYS_REFRESH_SECONDS": "5"}
    for _ in range(2):
        result = await asyncio.to_thread(sia, "keys", "rotate", env=env)
        assert result.returncode == 0, result.stderr
    conn = await asyncpg.connect(asyncpg_dsn(shared_database))
    try:
        rows = await conn.fetch("SELECT kid, creada_en, reemplazada_en FROM llave_publica ORDER BY creada_en")
    finally:
        await conn.close()
    ring = KeyRing(tmp_path / "keys" / "tokens", retain=None)
    assert [r["kid"] for r in rows] == [k.kid for k, _ in ring.local()]
    first, second = rows
    # The first key of a ring signs at once; the next one only after two refreshes, once all replicas know it.
    assert first["reemplazada_en"] == second["creada_en"]
    assert second["creada_en"] - dt.datetime.now(dt.UTC) > dt.timedelta(seconds=5)
