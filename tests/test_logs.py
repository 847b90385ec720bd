"""Logs that leak nothing (DESIGN §5): no frame locals in tracebacks, the traceback as data in JSON logs,
personal data masked in the access log, and only id-like X-Request-IDs believed."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest
import structlog
from fastapi import Request

from app.db import Database
from app.logging import configure_logging, looks_like_request_id, redact_query

SECRET = "Contrasena-Que-Nunca-Debe-Verse-9f3b"
OTP = "731904"


@pytest.fixture
def logs(capsys):
    """configure_logging as `sia serve` calls it, writing to the captured stderr; undone after the test."""
    root = logging.getLogger()
    saved_root = root.handlers[:], root.level
    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {
        n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate, logging.getLogger(n).level) for n in names
    }
    saved_filters = logging.getLogger("uvicorn.access").filters[:]

    def configure(*, json_logs: bool, access_log: bool = True) -> None:
        # As in `sia serve`, where uvicorn sets no level; an in-process uvicorn of another test may have.
        for n in names:
            logging.getLogger(n).setLevel(logging.NOTSET)
        configure_logging(json_logs=json_logs, access_log=access_log)

    yield configure
    root.handlers[:], level = saved_root
    root.setLevel(level)
    for n, (handlers, propagate, level) in saved.items():
        logging.getLogger(n).handlers[:] = handlers
        logging.getLogger(n).propagate = propagate
        logging.getLogger(n).setLevel(level)
    logging.getLogger("uvicorn.access").filters[:] = saved_filters
    structlog.reset_defaults()


async def _explode(request: Request) -> None:
    # Locals like the token route's: the form with the password and the OTP.
    form = await request.form()
    client_secret, otp = form["client_secret"], form["otp"]
    raise RuntimeError(f"falla provocada ({len(client_secret) + len(otp)})")


async def _provoke_500(app, client) -> httpx2.Response:
    app.add_api_route("/prueba/explota", _explode, methods=["POST"])
    form = {"client_id": "EKU9003173C9", "client_secret": SECRET, "otp": OTP}
    response = await client.post("/prueba/explota", data=form)
    assert response.status_code == 500 and response.json()["code"] == "error_interno"
    # What uvicorn itself logs for the same exception, after Starlette re-raises it.
    try:
        client_secret = SECRET  # noqa: F841 - a local uvicorn's traceback must not show
        raise RuntimeError("falla provocada")
    except RuntimeError as e:
        logging.getLogger("uvicorn.error").error("Exception in ASGI application\n", exc_info=e)
    return response


@pytest.mark.parametrize("json_logs", [False, True], ids=["consola", "json"])
async def test_a_500_logs_its_traceback_without_locals(app, client, logs, capsys, json_logs):
    # The attack: provoke a 500 in a request that carries a password. Before, the development console printed
    # every frame's locals (the form, client_secret, the OTP), ~1.7 MB per 500 rendered on the event loop.
    logs(json_logs=json_logs)
    await _provoke_500(app, client)
    err = capsys.readouterr().err
    assert "falla provocada" in err
    assert SECRET not in err and OTP not in err
    assert len(err) < 64_000, f"{len(err)} characters of log for one 500"
    if json_logs:
        records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        assert len(records) == len(err.splitlines()), "one JSON object per line, tracebacks included"
        failures = [r for r in records if r["event"] in ("unhandled_error", "Exception in ASGI application\n")]
        assert len(failures) == 2
        for record in failures:
            # The traceback as data (today's JSON logs dropped it): type, message and the frames, no locals.
            [exception] = record["exception"]
            assert exception["exc_type"] == "RuntimeError" and exception["frames"]
            assert all("locals" not in frame for frame in exception["frames"])
        assert failures[0]["request_id"] and failures[0]["path"] == "/prueba/explota"
    else:
        assert err.count("Traceback (most recent call last)") == 2


async def test_a_database_error_does_not_carry_the_statements_values(database_url):
    # The 500 that a NUL byte in client_id caused logged "[parameters: ('A\x00B',)]": the values of the query
    # (an RFC here, an NSS or a TOTP code elsewhere) went into the traceback's message.
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    database = Database.connect(database_url, pool_size=1)
    try:
        async with database.engine.connect() as conn:
            with pytest.raises(DBAPIError) as error:
                await conn.execute(text("SELECT CAST(:rfc AS text)"), {"rfc": "GODE561231GR8\x00"})
    finally:
        await database.dispose()
    assert "GODE561231GR8" not in str(error.value)
    assert "hidden due to hide_parameters" in str(error.value)


QUERY = (
    "/v1/avisos?rfc_patron=GODE561231GR8&nss=12345678901&curp=GODE561231HDFRRN09&limite=10"
    "&despues_de=A0000000000001&clase=retencion"
)


def test_personal_data_in_query_strings_is_masked():
    assert redact_query(QUERY) == (
        "/v1/avisos?rfc_patron=***&nss=***&curp=***&limite=10&despues_de=A0000000000001&clase=retencion"
    )
    # A company's RFC (12 characters) is in the public employer registry and helps an operator; a person's is not.
    assert redact_query("/v1/avisos?rfc_patron=EKU9003173C9&nrp=A1234567890") == (
        "/v1/avisos?rfc_patron=EKU9003173C9&nrp=A1234567890"
    )
    assert redact_query("/v1/acuses/F1/verificacion?sello=QmFzZTY0U2VsbG8") == "/v1/acuses/F1/verificacion?sello=***"
    # Unknown parameters are private until listed: a new parameter never leaks by default.
    assert redact_query("/v1/x?numero_credito=1234567890&nss") == "/v1/x?numero_credito=***&nss"
    assert redact_query("/livez") == "/livez"


def test_uvicorns_access_line_is_masked(logs, capsys):
    logs(json_logs=True)
    # uvicorn's own call (protocols/http/h11_impl.py), with the raw query string.
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:50000", "GET", QUERY, "1.1", 200)
    [line] = capsys.readouterr().err.splitlines()
    event = json.loads(line)["event"]
    assert "12345678901" not in event and "GODE561231" not in event and "limite=10" in event


def test_sia_access_log_false_turns_uvicorns_access_log_off(logs):
    """uvicorn writes an access line whenever uvicorn.access has a handler, its ancestors' included
    (protocols/http/httptools_impl.py: `self.access_log = self.access_logger.hasHandlers()`), whatever its own
    access_log option said: the root handler our logging installs must not be reachable when it is off."""
    logs(json_logs=True, access_log=False)
    assert not logging.getLogger("uvicorn.access").hasHandlers()
    logs(json_logs=True)
    assert logging.getLogger("uvicorn.access").hasHandlers()


@pytest.mark.slow
def test_the_access_log_of_a_running_server_holds_no_personal_data(database_url, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SIA_PORT": str(port),
        "SIA_DATA_DIR": str(tmp_path),
        "SIA_ENV": "test",
        "SIA_ACCESS_LOG": "true",
        "SIA_LOG_JSON": "true",
    }
    stderr = (tmp_path / "stderr").open("w+")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("sia")), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=stderr
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            assert process.poll() is None
            try:
                if httpx2.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                time.sleep(0.1)
        assert httpx2.get(base + QUERY).status_code == 401
        httpx2.get(f"{base}/v1/acuses/A0000000000001/verificacion", params={"sello": "QmFzZTY0U2VsbG8"})
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    stderr.seek(0)
    lines = [json.loads(line) for line in stderr.read().splitlines() if line.startswith("{")]
    access = [r["event"] for r in lines if r.get("logger") == "uvicorn.access"]
    assert any("/v1/avisos?" in a and "nss=***" in a for a in access), access
    text = "\n".join(access)
    assert "12345678901" not in text and "GODE561231" not in text and "QmFzZTY0U2VsbG8" not in text


@pytest.mark.parametrize(
    "value",
    ["x" * 5000, "<script>alert(1)</script>", "abc def ghi jkl", "id\u2028falso", "GODE561231GR8 nomina", "corto"],
)
async def test_a_request_id_that_is_not_an_id_is_replaced(client, value):
    response = await client.get("/livez", headers={"X-Request-ID": value.encode()})
    assert response.headers["x-request-id"] != value
    assert looks_like_request_id(response.headers["x-request-id"])


@pytest.mark.parametrize(
    "value", ["8f0e6c2d4b6a4e1f9c3d2b1a0f9e8d7c", "0b6f3a9e-2c41-4d8e-9a57-3e1f8c2d6b40", "01JDQ3ZK4Y6W8V2R5T7N9M1B3C"]
)
async def test_a_client_request_id_that_looks_like_one_is_kept(client, value):
    # A uuid, nginx's $request_id, a ULID: the client can find its request in our logs and audit.
    assert (await client.get("/livez", headers={"X-Request-ID": value})).headers["x-request-id"] == value
