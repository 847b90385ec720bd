"""A revoked e.firma is refused (DESIGN §5): CRLs (*.crl, DER or PEM) in the trust folder, and OCSP when
SIA_EFIRMA_OCSP_URL is set, against a CA built here (its key signs the CRLs and the OCSP answers) and an OCSP
responder on loopback."""

import datetime as dt
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import time_machine
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp
from sqlalchemy import text

from app import efirma_demo
from app.security import efirma
from tests.identity_helpers import Efirma, prove

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture(scope="module")
def ca() -> efirma_demo.DemoCa:
    return efirma_demo.make_ca("AC DE PRUEBA DE REVOCACION", now=NOW - dt.timedelta(days=365))


def _efirma(ca: efirma_demo.DemoCa, rfc: str) -> tuple[Efirma, x509.Certificate]:
    cert, key = efirma_demo.make_efirma(ca, rfc=rfc, nombre=f"PERSONA {rfc}", not_before=NOW - dt.timedelta(days=30))
    return Efirma(rfc, cert.public_bytes(serialization.Encoding.DER), key), cert


@pytest.fixture(scope="module")
def revoked(ca):
    return _efirma(ca, "GODE561231GR8")


@pytest.fixture(scope="module")
def valid(ca):
    return _efirma(ca, "XIQB891116QE4")


def make_crl(issuer: x509.Name, serials: list[int], key: rsa.RSAPrivateKey) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer)
        .last_update(NOW - dt.timedelta(days=1))
        .next_update(NOW + dt.timedelta(days=6))
    )
    for serial in serials:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW - dt.timedelta(days=2))
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(key, hashes.SHA256())


@pytest.fixture
def trust(tmp_path, ca) -> Path:
    folder = tmp_path / "confianza"
    efirma_demo.write_ca(folder, ca)
    return folder


@pytest.fixture
def extra_settings() -> dict:
    """Settings a test adds (parametrized by name, or set by the responder fixture)."""
    return {}


@pytest.fixture
def app_settings(settings, tmp_path, trust, extra_settings):
    return settings.model_copy(update={"data_dir": tmp_path, "efirma_trust_dir": trust, **extra_settings})


async def _issue(client, who: Efirma):
    return await client.post("/v1/contrasenas", json={**await prove(client, who), "correo": "nomina@example.com"})


async def _credentials(connection) -> int:
    return await connection.scalar(text("SELECT count(*) FROM credencial"))


# ------------------------------------------------------------------ CRL


@pytest.mark.parametrize("encoding", [serialization.Encoding.DER, serialization.Encoding.PEM])
async def test_an_efirma_listed_in_a_crl_of_its_ca_is_refused(client, connection, trust, ca, revoked, encoding):
    # The attack: an e.firma the SAT revoked (stolen, say) asks for a password. Before, the CRL was ignored.
    who, cert = revoked
    (trust / "ac-prueba.crl").write_bytes(
        make_crl(ca.cert.subject, [cert.serial_number], ca.key).public_bytes(encoding)
    )
    response = await _issue(client, who)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "certificado_revocado"
    assert "revocada el 2026-11-22" in response.json()["detail"]
    assert await _credentials(connection) == 0


async def test_an_efirma_not_in_the_crl_still_gets_its_password(client, trust, ca, revoked, valid):
    # The CRL sits among the CA certificates: it is read as a CRL, not skipped as an unreadable certificate, and
    # it does not stop the CA next to it from being trusted.
    (trust / "ac-prueba.crl").write_bytes(
        make_crl(ca.cert.subject, [revoked[1].serial_number], ca.key).public_bytes(serialization.Encoding.DER)
    )
    response = await _issue(client, valid[0])
    assert response.status_code == 201, response.text


async def test_a_crl_the_ca_did_not_sign_revokes_nothing(client, trust, ca, valid):
    # Someone else's list with the CA's name, or another CA's list naming the same serial number.
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = efirma_demo.make_ca("OTRA AC", now=NOW - dt.timedelta(days=365))
    serial = valid[1].serial_number
    (trust / "falsa.crl").write_bytes(
        make_crl(ca.cert.subject, [serial], impostor).public_bytes(serialization.Encoding.DER)
    )
    (trust / "otra.crl").write_bytes(
        make_crl(other.cert.subject, [serial], other.key).public_bytes(serialization.Encoding.DER)
    )
    assert (await _issue(client, valid[0])).status_code == 201


def test_crls_are_not_read_as_anchors(tmp_path, ca, caplog):
    efirma_demo.write_ca(tmp_path, ca)
    (tmp_path / "ac.crl").write_bytes(make_crl(ca.cert.subject, [], ca.key).public_bytes(serialization.Encoding.PEM))
    (tmp_path / "rota.crl").write_bytes(b"no es una CRL")
    assert efirma.load_trust_anchors(tmp_path) == [ca.cert]
    assert len(efirma.load_crls(tmp_path)) == 1
    assert "rota.crl" in caplog.text


# ------------------------------------------------------------------ OCSP


class Responder:
    """An OCSP responder on loopback that signs with the CA's key (or another, to test forgeries)."""

    def __init__(self, ca: efirma_demo.DemoCa, known: dict[int, x509.Certificate]) -> None:
        self.ca, self.known = ca, known
        self.revoked: set[int] = set()
        self.requests = 0
        self.signing_key: rsa.RSAPrivateKey = ca.key
        self.delegate: x509.Certificate | None = None  # a responder certificate, signing with signing_key
        self.delay = 0.0
        responder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                responder.requests += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                answer = responder.answer(ocsp.load_der_ocsp_request(body))
                time.sleep(responder.delay)
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ocsp"

    def answer(self, request: ocsp.OCSPRequest) -> bytes:
        cert = self.known.get(request.serial_number)
        if cert is None:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(
                serialization.Encoding.DER
            )
        is_revoked = request.serial_number in self.revoked
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=cert,
            issuer=self.ca.cert,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.REVOKED if is_revoked else ocsp.OCSPCertStatus.GOOD,
            this_update=NOW - dt.timedelta(minutes=10),
            next_update=NOW + dt.timedelta(hours=4),
            revocation_time=NOW - dt.timedelta(days=3) if is_revoked else None,
            revocation_reason=x509.ReasonFlags.key_compromise if is_revoked else None,
        )
        if self.delegate is not None:
            builder = builder.responder_id(ocsp.OCSPResponderEncoding.NAME, self.delegate)
            builder = builder.certificates([self.delegate])
        else:
            builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, self.ca.cert)
        return builder.sign(self.signing_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@pytest.fixture
def responder(ca, revoked, valid, extra_settings):
    known = {revoked[1].serial_number: revoked[1], valid[1].serial_number: valid[1]}
    server = Responder(ca, known)
    server.revoked.add(revoked[1].serial_number)
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    extra_settings.update(efirma_ocsp_url=server.url, efirma_ocsp_timeout_seconds=1.0)
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


async def test_ocsp_revoked_is_refused(responder, client, connection, revoked):
    # No CRL in the folder: only the responder knows. Before, nobody asked it.
    response = await _issue(client, revoked[0])
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "certificado_revocado"
    assert responder.requests == 1 and await _credentials(connection) == 0


async def test_ocsp_good_is_accepted_and_cached(responder, client, valid):
    issued = await _issue(client, valid[0])
    assert issued.status_code == 201, issued.text
    proof = await prove(client, valid[0])
    renewed = await client.post("/v1/contrasenas/renovacion", json=proof)
    assert renewed.status_code == 201, renewed.text
    assert responder.requests == 1, "the second proof within the cache window reuses the answer"


async def test_an_ocsp_answer_signed_by_someone_else_is_not_believed(responder, client, connection, valid):
    # A man in the middle (OCSP runs over plain HTTP) answers "good" with its own key.
    responder.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = await _issue(client, valid[0])
    assert response.status_code == 503 and response.json()["code"] == "revocacion_no_verificable"
    assert await _credentials(connection) == 0


def _delegate(ca: efirma_demo.DemoCa, *, ocsp_signing: bool) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "OCSP DE PRUEBA")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
    )
    usage = x509.ExtendedKeyUsageOID.OCSP_SIGNING if ocsp_signing else x509.ExtendedKeyUsageOID.CLIENT_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(ca.key, hashes.SHA256()), key


@pytest.mark.parametrize("ocsp_signing", [True, False], ids=["delegado", "sin_ocsp_signing"])
async def test_a_responder_the_ca_delegated_to_is_believed_and_no_other(responder, client, ca, valid, ocsp_signing):
    # RFC 6960 §4.2.2.2: the CA may name a responder with a certificate carrying id-kp-OCSPSigning. Any other
    # certificate the CA issued (an e.firma, say) must not be able to vouch for anyone.
    responder.delegate, responder.signing_key = _delegate(ca, ocsp_signing=ocsp_signing)
    response = await _issue(client, valid[0])
    assert response.status_code == (201 if ocsp_signing else 503), response.text


async def test_a_slow_responder_is_a_clear_503_not_a_hang(responder, client, valid):
    responder.delay = 2.0  # beyond the 1 s timeout
    started = time.monotonic()
    response = await _issue(client, valid[0])
    assert response.status_code == 503 and response.json()["code"] == "revocacion_no_verificable"
    assert response.headers["retry-after"]
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("extra_settings", [{"efirma_ocsp_url": "http://127.0.0.1:9/ocsp"}])
async def test_an_unreachable_responder_refuses_by_default(client, connection, valid):
    response = await _issue(client, valid[0])
    assert response.status_code == 503, response.text
    problem = response.json()
    assert problem["code"] == "revocacion_no_verificable" and "OCSP" in problem["detail"]
    assert response.headers["retry-after"] == "60"
    assert await _credentials(connection) == 0


@pytest.mark.parametrize(
    "extra_settings", [{"efirma_ocsp_url": "http://127.0.0.1:9/ocsp", "efirma_ocsp_fail_open": True}]
)
async def test_an_unreachable_responder_can_be_configured_to_accept(client, valid, caplog):
    response = await _issue(client, valid[0])
    assert response.status_code == 201, response.text
    assert "SIA_EFIRMA_OCSP_FAIL_OPEN" in caplog.text


async def test_a_crl_and_ocsp_together_the_crl_answers_first(responder, client, trust, ca, revoked):
    (trust / "ac.crl").write_bytes(
        make_crl(ca.cert.subject, [revoked[1].serial_number], ca.key).public_bytes(serialization.Encoding.DER)
    )
    response = await _issue(client, revoked[0])
    assert response.json()["code"] == "certificado_revocado"
    assert responder.requests == 0, "a CRL already listing it spares the network"
