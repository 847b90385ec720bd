"""A committed data set for the avisos tests: two employers with avisos, four RFCs with credentials."""

import asyncio
import datetime as dt
import tempfile
import uuid
from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app import loaders
from app.db import async_url
from app.demo import demo_avisos, demo_patrones
from app.models import Certificacion, Credencial
from app.security import tokens
from app.security.keys import KeyRing
from app.settings import Settings
from tests import factories as f

EMPLOYERS = demo_patrones(2)
A, B = EMPLOYERS
DEV, OTHER = "XIQB891116QE4", "GODE561231GR8"
COUNTS = {A.rfc: 150, B.rfc: 40}
NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def credential_id(rfc: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"sia-test:{rfc}")


def credential(rfc: str) -> dict:
    """An active credential of rfc, as a row of Credencial."""
    return dict(
        id=credential_id(rfc),
        rfc=rfc,
        correo="x@y.mx",
        nombre=rfc,
        hash_contrasena="-",
        totp_cifrado=b"-",
        estado="activa",
        certificado_numero="1",
        creada_en=NOW,
    )


async def _seed(url: str) -> None:
    engine = create_async_engine(async_url(url), poolclass=NullPool)
    with tempfile.TemporaryDirectory() as folder:
        registry = f.write_patrones_csv(Path(folder) / "p.csv", EMPLOYERS)
        async with engine.begin() as conn:
            await loaders.load_patrones(conn, registry)
        for employer, seed in ((A, 1), (B, 2)):
            records = list(demo_avisos([employer], COUNTS[employer.rfc], seed=seed, hasta=f.HASTA))
            async with engine.begin() as conn:
                await loaders.load_avisos(conn, f.write_ndjson(Path(folder) / "a.ndjson", records), today=f.TODAY)
    async with engine.begin() as conn:
        for rfc in (A.rfc, B.rfc, DEV, OTHER):
            await conn.execute(Credencial.__table__.insert().values(**credential(rfc)))
    await engine.dispose()


def seed(url: str) -> None:
    asyncio.run(_seed(url))


def bearer(settings: Settings, rfc: str) -> dict[str, str]:
    ring = KeyRing(settings.keys_dir / "tokens", retain=None)
    token = tokens.issue_access_token(
        ring,
        sub=rfc,
        credencial_id=credential_id(rfc),
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        ttl=dt.timedelta(days=3650),
        now=dt.datetime.now(dt.UTC),
    )
    return {"Authorization": f"Bearer {token}"}


def certification(rfc: str, until: dt.datetime | None = None) -> dict:
    return dict(
        id=uuid.uuid4(),
        rfc=rfc,
        estado="aprobada",
        creada_en=NOW,
        aprobada_en=NOW,
        vigente_hasta=until or dt.datetime.now(dt.UTC) + dt.timedelta(days=365),
    )


CERTIFICACION = Certificacion.__table__
