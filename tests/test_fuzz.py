"""schemathesis against the running service: every operation, with a valid token and with garbage, in a
bounded run. Two checks are left out on purpose:
- positive_data_acceptance: JSON Schema cannot say "NSS/CURP check digit", "a date that exists inside an
  RFC" or "a code of the catalog"; input that only the schema finds valid gets the 422 it deserves;
- use_after_free: DELETE of a certification or a relationship cancels or revokes it, and the record stays
  readable with its new estado, by design (the acuse and the audit refer to it)."""

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import async_url
from tests.live import live_server
from tests.test_certificacion import EMPLOYER, _seed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients" / "python"))
from sia_cliente import ClienteSIA

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


async def _certify(url: str, rfc: str) -> None:
    engine = create_async_engine(async_url(url))
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO certificacion (id, rfc, estado, creada_en, aprobada_en, vigente_hasta) "
                "VALUES (gen_random_uuid(), :r, 'aprobada', now(), now(), now() + interval '1 day')"
            ),
            {"r": rfc},
        )
    await engine.dispose()


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_broken_contract(new_database, tmp_path):
    url = new_database()
    credentials = asyncio.run(_seed(url))
    asyncio.run(_certify(url, EMPLOYER.rfc))
    with live_server(url, tmp_path / "srv", SIA_RATE_LIMIT_ENABLED="false") as base:
        password, secret = credentials[EMPLOYER.rfc]
        token = ClienteSIA(base, EMPLOYER.rfc, password, secret).token()
        result = subprocess.run(
            [
                SCHEMATHESIS,
                "run",
                f"{base}/openapi.json",
                "--header",
                f"Authorization: Bearer {token}",
                "--max-examples",
                "8",
                "--max-time",
                "150",
                "--exclude-checks",
                "positive_data_acceptance,use_after_free",
                "--generation-deterministic",
                "--request-timeout",  # `espera` may hold a request for up to 60 s, by design
                "90",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=400,
        )
    report = Path(__file__).resolve().parents[1] / "artifacts" / "schemathesis.txt"
    report.parent.mkdir(exist_ok=True)
    report.write_text(result.stdout + result.stderr, encoding="utf-8")
    assert result.returncode == 0, f"see {report}\n" + result.stdout[-4000:]
