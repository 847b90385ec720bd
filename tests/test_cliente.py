"""The reference client recovers: it backs off and retries on 5xx, 429 and network errors, and a run restarted
within the same 30-second step does not resend the TOTP code it already used.

The service here is a stand-in at the HTTP level (httpx2.MockTransport) with a fake clock: what is tested is
the client's own behaviour, deterministically and without waiting. That the service refuses a replay without
counting it toward the lockout is tested against the real service (test_identity)."""

import json
import sys
from pathlib import Path

import httpx2
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients" / "python"))
import sia_cliente
from sia_cliente import ClienteSIA

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
START = 1_800_000_000 + 5  # 5 s into a TOTP step


class FakeTime:
    """The client's clock: sleeping moves it forward, instantly."""

    def __init__(self, start: float = START) -> None:
        self.now = float(start)
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(seconds, 0)


class Service:
    """Refuses a TOTP code it has already accepted, as the real one does; fails data requests as scripted."""

    def __init__(self, failures: list) -> None:
        self.failures = list(failures)  # per data request: a status, an exception, or None for success
        self.codes: list[str] = []
        self.replays = 0
        self.data_requests: list[str] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/v1/token":
            code = dict(httpx2.QueryParams(request.content.decode()))["otp"]
            if code in self.codes:
                self.replays += 1
                return httpx2.Response(401, json={"error": "invalid_client"})
            self.codes.append(code)
            return httpx2.Response(200, json={"access_token": f"t{len(self.codes)}", "expires_in": 300})
        self.data_requests.append(request.method)
        failure = self.failures.pop(0) if self.failures else None
        if isinstance(failure, Exception):
            raise failure
        if isinstance(failure, int):
            headers = {"Retry-After": "3"} if failure in (429, 503) else {}
            return httpx2.Response(failure, json={"code": "x"}, headers=headers)
        return httpx2.Response(200, json={"avisos": [], "hay_mas": False})


@pytest.fixture
def clock(monkeypatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(sia_cliente, "time", fake)
    return fake


def client_for(service: Service, monkeypatch, paso_archivo: Path | None = None) -> ClienteSIA:
    real_client = httpx2.Client

    def with_mock(**kwargs):
        kwargs.pop("transport", None)
        return real_client(transport=httpx2.MockTransport(service), **kwargs)

    monkeypatch.setattr(sia_cliente.httpx2, "Client", with_mock)
    extra = {"paso_archivo": paso_archivo} if paso_archivo else {}
    return ClienteSIA("http://sia.test", "EKU9003173C9", "contrasena", SECRET, **extra)


def test_a_run_restarted_within_the_same_step_waits_for_the_next_code(clock, monkeypatch, tmp_path):
    service = Service([])
    paso = tmp_path / "totp.paso"
    client_for(service, monkeypatch, paso).token()
    # The process dies and starts again 2 s later, in the same 30-second step.
    clock.now += 2
    client_for(service, monkeypatch, paso).token()
    assert service.replays == 0, "the restarted run resent the code it had already used"
    assert len(set(service.codes)) == 2
    assert clock.now >= (START // 30 + 1) * 30  # it waited for the next step


@pytest.mark.parametrize(
    "failures",
    [
        [500],
        [502, 504],
        [503],
        [httpx2.ConnectError("connection refused")],
        [httpx2.ReadTimeout("read timed out")],
        [429, 500, httpx2.RemoteProtocolError("server disconnected")],
    ],
    ids=["500", "502-504", "503", "connect-error", "read-timeout", "mixed"],
)
def test_a_read_is_retried_with_backoff_on_5xx_429_and_network_errors(clock, monkeypatch, failures):
    service = Service(failures)
    client = client_for(service, monkeypatch)
    assert list(client.paginas()) == []  # no exception: the last attempt succeeded
    assert len(service.data_requests) == len(failures) + 1
    if any(f in (429, 503) for f in failures):
        assert max(clock.slept) >= 3  # never sooner than Retry-After


def test_backoff_grows_and_is_jittered(clock, monkeypatch):
    service = Service([500] * 6)
    client = client_for(service, monkeypatch)
    client.pedir("GET", "/v1/avisos")
    waits = clock.slept
    assert len(waits) == 6 and all(0 <= w <= 0.5 * 2**i for i, w in enumerate(waits))
    assert len(set(waits)) > 1  # jitter: not the same wait every time


def test_it_gives_up_after_its_retries_with_the_last_answer(clock, monkeypatch):
    service = Service([503] * 20)
    client = client_for(service, monkeypatch)
    assert client.pedir("GET", "/v1/avisos").status_code == 503
    assert len(service.data_requests) == 9


def test_a_post_that_may_have_taken_effect_is_not_repeated(clock, monkeypatch):
    service = Service([500])
    client = client_for(service, monkeypatch)
    assert client.pedir("POST", "/v1/certificaciones").status_code == 500
    assert service.data_requests == ["POST"]


def _ndjson_page(folios: list[str], *, hay_mas: bool, whole: bool = True) -> bytes:
    lines = b"".join(json.dumps({"folio": folio, "nss": "1"}).encode() + b"\n" for folio in folios)
    return lines + (json.dumps({"fin": True, "hay_mas": hay_mas}).encode() + b"\n" if whole else b"")


class NdjsonService(Service):
    """Serves the scripted NDJSON pages in turn, recording the cursor of each request."""

    def __init__(self, pages: list[bytes]) -> None:
        super().__init__([])
        self.pages, self.cursors = list(pages), []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/v1/token":
            return super().__call__(request)
        assert request.url.path == "/v1/avisos.ndjson"
        self.cursors.append(request.url.params.get("despues_de"))
        return httpx2.Response(200, content=self.pages.pop(0), headers={"content-type": "application/x-ndjson"})


def test_a_cut_ndjson_page_is_detected_and_resumed_after_its_last_whole_aviso(clock, monkeypatch, tmp_path):
    """A page that ends without its final line (here cut after an aviso, and inside the next one) is not taken
    as the last page: the client keeps the whole avisos and asks for the rest after the last of them."""
    cut = _ndjson_page(["01", "02"], hay_mas=True, whole=False) + b'{"folio": "03", "n'
    service = NdjsonService([cut, _ndjson_page(["03", "04"], hay_mas=True), _ndjson_page(["05"], hay_mas=False)])
    archivo = tmp_path / "avisos.ndjson"
    assert client_for(service, monkeypatch).sincronizar(archivo, limite=2) == 5
    assert [json.loads(line)["folio"] for line in archivo.read_text().splitlines()] == ["01", "02", "03", "04", "05"]
    assert service.cursors == [None, "02", "04"]
    assert len(clock.slept) == 1, "a cut page is asked for again with backoff, as a failed request"


def test_a_short_page_without_its_final_line_is_not_the_last(clock, monkeypatch, tmp_path):
    """Fewer avisos than limite used to mean the last page; without its final line it means a cut page."""
    service = NdjsonService([_ndjson_page(["01"], hay_mas=False, whole=False), _ndjson_page([], hay_mas=False)])
    archivo = tmp_path / "avisos.ndjson"
    assert client_for(service, monkeypatch).sincronizar(archivo, limite=10) == 1
    assert service.cursors == [None, "01"]
