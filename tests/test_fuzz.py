"""schemathesis against the running service: every operation, with a valid token and with garbage, in a
bounded run; then every parameter and field with the extreme values random generation rarely reaches (NUL bytes,
the ends of the date range and beyond, integers past PostgreSQL's bigint). Two checks are left out on purpose:
- positive_data_acceptance: JSON Schema cannot say "NSS/CURP check digit", "a date that exists inside an
  RFC" or "a code of the catalog"; input that only the schema finds valid gets the 422 it deserves;
- use_after_free: DELETE of a certification or a relationship cancels or revokes it, and the record stays
  readable with its new estado, by design (the acuse and the audit refer to it)."""

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
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
        # A body above the documented limit is refused with 413 before it is read: a rejection like the others.
        (tmp_path / "schemathesis.toml").write_text(
            "[checks.negative_data_rejection]\n"
            'expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", '
            '"429", "5xx"]\n',
            encoding="utf-8",
        )
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
                # Of make test's ten minutes on two cores. Examples and coverage go through every operation once;
                # fuzzing and stateful testing repeat until the budget is spent, so more of it buys repetitions,
                # not operations (artifacts/schemathesis.txt says what each phase ran).
                "60",
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


# Each of these once answered 500 somewhere: NUL in client_id (PostgreSQL refuses it in text), dates whose
# offset or Mexico City's time pushes them past datetime's range, ids above bigint.
EXTREMES: list[Any] = [
    "A\x00B",
    "\x00",
    "\x1b[31m",
    "9999-12-31T23:59:59",
    "9999-12-31T23:59:59-12:00",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01",
    "9999-12-31",
    2**63,
    -(2**63) - 1,
    10**30,
    -1,
]


def _placeholder(schema: dict[str, Any]) -> str:
    """A well-formed value for a path parameter that is not under attack."""
    if "example" in schema:
        return str(schema["example"])
    if schema.get("format") == "uuid":
        return str(uuid.uuid4())
    if "enum" in schema:
        return str(schema["enum"][0])
    return "ACU-20261124-3F9A0C21B7"


def _cases(spec: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, path, what is attacked, httpx arguments): one extreme value in one parameter or field at a time."""
    cases = []
    for template, item in spec["paths"].items():
        for method, operation in item.items():
            parameters = operation.get("parameters", [])
            path_values = {
                p["name"]: _placeholder({**p["schema"], **({"example": p["example"]} if "example" in p else {})})
                for p in parameters
                if p["in"] == "path"
            }

            def path(overrides: dict[str, Any], template: str = template, path_values: dict = path_values) -> str:
                values = {**path_values, **overrides}
                return template.format(**{k: quote(str(v), safe="") for k, v in values.items()})

            for parameter in parameters:
                if parameter["in"] not in ("path", "query"):
                    continue
                for value in EXTREMES:
                    where = f"{parameter['in']}.{parameter['name']}={value!r}"
                    if parameter["in"] == "path":
                        cases.append((method, path({parameter["name"]: value}), where, {}))
                    else:
                        cases.append((method, path({}), where, {"params": {parameter["name"]: str(value)}}))
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                example = content.get("example")
                if not isinstance(example, dict):
                    continue
                for field in example:
                    for value in EXTREMES:
                        body = {**example, field: [value] if isinstance(example[field], list) else value}
                        where = f"body.{field}={value!r}"
                        if media == "application/x-www-form-urlencoded":
                            cases.append((method, path({}), where, {"data": {k: str(v) for k, v in body.items()}}))
                        else:
                            cases.append((method, path({}), where, {"json": body}))
    return cases


async def _example_developer(url: str, rfc: str) -> None:
    """The developer the relationship example names, with a password and a certification: without them the
    relationship is refused (422) before its dates are ever used."""
    engine = create_async_engine(async_url(url))
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO credencial (id, rfc, correo, hash_contrasena, totp_cifrado, estado, certificado_numero, "
                "creada_en) VALUES (gen_random_uuid(), :r, 'x@y.mx', '-', '\\x00', 'activa', '1', now())"
            ),
            {"r": rfc},
        )
    await engine.dispose()
    await _certify(url, rfc)


@pytest.mark.slow
def test_extreme_values_in_every_parameter_and_field_are_never_a_server_error(new_database, tmp_path):
    url = new_database()
    credentials = asyncio.run(_seed(url))
    asyncio.run(_certify(url, EMPLOYER.rfc))
    # Tokens of the longest life: a server slowed down by failures must not turn every later case into a 401.
    with live_server(url, tmp_path / "srv", SIA_RATE_LIMIT_ENABLED="false", SIA_TOKEN_TTL_MINUTES="60") as base:
        password, secret = credentials[EMPLOYER.rfc]
        token = ClienteSIA(base, EMPLOYER.rfc, password, secret).token()
        spec = httpx2.get(f"{base}/openapi.json").json()
        relacion = spec["paths"]["/v1/relaciones-confianza"]["post"]["requestBody"]["content"]["application/json"]
        asyncio.run(_example_developer(url, relacion["example"]["rfc_desarrollador"]))
        cases = _cases(spec)
        failures = []
        with httpx2.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
            for method, path, where, arguments in cases:
                try:
                    response = client.request(method.upper(), path, **arguments)
                except httpx2.TransportError as e:
                    failures.append(f"{method.upper()} {path} {where}: no answer ({e!r})")
                    continue
                if response.status_code >= 500:
                    failures.append(f"{method.upper()} {path} {where}: {response.status_code} {response.text[:200]}")
    assert len(cases) > 300, "the spec lost its parameters or its examples"
    assert not failures, f"{len(failures)} of {len(cases)} cases:\n" + "\n".join(failures)
