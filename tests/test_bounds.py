"""DESIGN §5: bounded requests (body, headers, header time) and the security headers of every response. The
attacks run in process (the body limit is ASGI middleware) and against a live `sia serve` (header bounds live in
uvicorn's protocol, the banner in its config)."""

import socket
import threading
import time
from urllib.parse import urlsplit

import httpx2
import psutil
import pytest

from app.problems import PROBLEM_MEDIA_TYPE
from tests.live import live_server

LIMIT = 64 * 1024
CERT_SIZED = {"reto_id": "0b6f3a9e-2c41-4d8e-9a57-3e1f8c2d6b40", "certificado": "A" * 20_000, "firma": "B" * 4_000}


# ------------------------------------------------------------------ bodies, in process


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/relaciones-confianza"),  # authenticated: the 401 used to come after the whole body was read
        ("POST", "/v1/efirma/retos"),
        ("POST", "/v1/certificaciones/0b6f3a9e-2c41-4d8e-9a57-3e1f8c2d6b40/evidencias"),
    ],
)
async def test_a_body_above_the_limit_is_413_before_authentication(client, method, path):
    # Content-Length says it: refused before a byte of the body is read.
    body = b'{"x": "' + b"A" * (LIMIT + 1) + b'"}'
    response = await client.request(method, path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    problem = response.json()
    assert problem["code"] == "solicitud_demasiado_grande" and str(LIMIT) in problem["detail"]
    assert problem["request_id"] == response.headers["x-request-id"]


async def test_a_chunked_body_without_length_is_cut_at_the_limit(client):
    sent = 0

    async def chunks():
        nonlocal sent
        for _ in range(1_000):  # 16 MB if nobody stopped reading
            sent += 16 * 1024
            yield b"A" * (16 * 1024)

    response = await client.post("/v1/efirma/retos", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["code"] == "solicitud_demasiado_grande"
    assert sent <= LIMIT + 2 * 16 * 1024, f"{sent} bytes were read"


async def test_the_token_endpoint_answers_413_as_oauth(client):
    form = {"grant_type": "client_credentials", "client_id": "EKU9003173C9", "client_secret": "x" * LIMIT, "otp": "1"}
    response = await client.post("/v1/token", data=form)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "invalid_request" and response.headers["cache-control"] == "no-store"


async def test_an_efirma_proof_fits_under_the_limit(client):
    # A certificate and a signature at their longest are a proof the limit must let through.
    response = await client.post("/v1/contrasenas", json={**CERT_SIZED, "correo": "nomina@example.com"})
    assert response.status_code != 413, response.text


# ------------------------------------------------------------------ security headers, in process


async def test_nosniff_and_no_store_on_every_kind_of_response(app, client):
    @app.get("/boom")
    async def boom():
        raise RuntimeError("secreto interno")

    responses = [
        await client.get("/livez"),
        await client.get("/v1/no-existe"),
        await client.get("/v1/avisos"),  # 401
        await client.get("/v1/avisos?limite=0"),  # 422
        await client.post("/v1/efirma/retos", content=b"A" * (LIMIT + 1)),  # 413
        await client.get("/boom"),  # 500, answered outside the middleware
        await client.post("/v1/token", data={}),
    ]
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff", response.request.url
        assert response.headers["cache-control"] == "no-store", response.request.url


async def test_public_documents_keep_their_own_cache_control(client):
    jwks = await client.get("/.well-known/jwks.json")
    assert jwks.headers["cache-control"] == "public, max-age=300"
    assert jwks.headers["x-content-type-options"] == "nosniff"


# ------------------------------------------------------------------ a live server: headers and memory


@pytest.fixture(scope="module")
def live(new_database, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bounds")
    with live_server(new_database(), folder / "srv", SIA_HEADER_TIMEOUT_SECONDS="2") as base:
        yield base


def _raw(base: str, request: bytes, *, pause: float = 0.0, timeout: float = 10) -> bytes:
    """Sends raw bytes (headers an HTTP client would refuse to send) and returns what the server answers."""
    address = urlsplit(base)
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as conn:
        conn.sendall(request)
        if pause:
            time.sleep(pause)
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return answer


def _server_pid(base: str) -> int:
    port = urlsplit(base).port
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port:
            return conn.pid
    raise AssertionError("no process listens on the live port")


@pytest.mark.slow
def test_no_server_banner_and_nosniff_live(live):
    response = httpx2.get(f"{live}/livez")
    assert "server" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.slow
def test_headers_above_the_limit_are_431(live):
    big = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Relleno: " + b"a" * (20 * 1024) + b"\r\n\r\n"
    assert _raw(live, big).startswith(b"HTTP/1.1 431 ")
    many = b"GET /livez HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"a" * 100) for i in range(200))
    assert _raw(live, many + b"\r\n").startswith(b"HTTP/1.1 431 ")
    assert httpx2.get(f"{live}/livez", headers={"X-Normal": "a" * 4096}).status_code == 200


@pytest.mark.slow
def test_a_head_sent_too_slowly_is_cut(live):
    # slowloris: a request line, then nothing; the server used to wait for ever.
    started = time.monotonic()
    answer = _raw(live, b"GET /livez HTTP/1.1\r\nHost: x\r\n", timeout=30)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert time.monotonic() - started < 20
    # a connection that never sends a byte is closed too
    assert _raw(live, b"", timeout=30).startswith(b"HTTP/1.1 408 ")


def _hundred_mb(chunked: bool):
    opening, chunk, closing = b'{"rfc": "', b"A" * 2**20, b'"}'
    if not chunked:
        return opening + chunk * 100 + closing

    def stream():  # no Content-Length: the limit must count what arrives
        yield opening
        for _ in range(100):
            yield chunk
        yield closing

    return stream()


@pytest.mark.slow
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_100_mb_body_is_refused_unread_and_the_server_memory_stays_flat(live, chunked):
    server = psutil.Process(_server_pid(live))
    before = server.memory_info().rss
    peak, done = before, threading.Event()

    def sample() -> None:  # the peak: a freed 100 MB buffer goes back to the system at once
        nonlocal peak
        while not done.is_set():
            peak = max(peak, server.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    payload = _hundred_mb(chunked)
    try:
        response = httpx2.post(
            f"{live}/v1/relaciones-confianza", content=payload, headers={"Content-Type": "application/json"}, timeout=60
        )
        status = response.status_code
    except httpx2.TransportError:
        status = None  # the server may close before the client has written everything: it did not read it
    time.sleep(0.5)
    done.set()
    sampler.join()
    grown = peak - before
    print(f"chunked={chunked}: RSS before {before / 2**20:.1f} MiB, peak growth {grown / 2**20:.1f} MiB, {status}")
    assert status in (413, None)
    assert grown < 20 * 2**20, f"the server grew {grown / 2**20:.0f} MiB"
