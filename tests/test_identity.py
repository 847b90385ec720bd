"""DESIGN §2 flows 1–2 with SAT's real test e.firma files, and the attacks of §5."""

import asyncio
import base64
import datetime as dt
import json
from pathlib import Path

import jwt
import pytest
import time_machine
from sqlalchemy import text

from app import efirma_demo
from app.problems import PROBLEM_MEDIA_TYPE
from app.security import passwords, tokens, totp
from tests.identity_helpers import (
    Efirma,
    obtain_password,
    obtain_token,
    password_from_message,
    password_from_outbox,
    prove,
    token_response,
)
from tests.smtp_helpers import smtp_server as tls_smtp_server

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)  # EKU9003173C9's FIEL is valid until 2027-05-17


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


@pytest.fixture
def eku(sat: Path) -> Efirma:
    return Efirma.from_files("EKU9003173C9", sat / "EKU9003173C9_fiel.cer", sat / "EKU9003173C9_fiel.key")


@pytest.fixture
def cacx(sat: Path) -> Efirma:
    return Efirma.from_files("CACX7605101P8", sat / "CACX7605101P8_fiel.cer", sat / "CACX7605101P8_fiel.key")


@pytest.fixture(scope="module")
def outsider() -> Efirma:
    """A well-formed e.firma from a CA the service does not trust."""
    ca = efirma_demo.make_ca("AC AJENA")
    cert, key = efirma_demo.make_efirma(
        ca, rfc="GODE561231GR8", nombre="ALGUIEN AJENO", not_before=NOW - dt.timedelta(days=30)
    )
    from cryptography.hazmat.primitives import serialization

    return Efirma("GODE561231GR8", cert.public_bytes(serialization.Encoding.DER), key)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------ the whole flow


@pytest.fixture
def smtp_server(tmp_path):
    # STARTTLS with a certificate the service is told to trust: the password travels as in production.
    with tls_smtp_server(tmp_path) as (controller, inbox, certificate):
        yield controller, inbox, certificate


@pytest.fixture
def app_settings(settings, request, tmp_path):
    """Each test gets its own data folder: its own signing keys and outbox."""
    update = {"data_dir": tmp_path}
    if "smtp_server" in request.fixturenames:
        controller, _, certificate = request.getfixturevalue("smtp_server")
        update |= {"smtp_host": "127.0.0.1", "smtp_port": controller.port, "smtp_ca_file": certificate}
    return settings.model_copy(update=update)


async def test_full_flow_with_sat_efirma_and_real_smtp(client, eku, smtp_server):
    _, inbox, _ = smtp_server
    proof = await prove(client, eku)
    issued = await client.post("/v1/contrasenas", json={**proof, "correo": "nomina@escuela.mx"})
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert body["rfc"] == "EKU9003173C9" and body["correo_enmascarado"] == "n*****@escuela.mx"
    assert body["otp"]["uri"].startswith("otpauth://totp/SIA%20Infonavit:EKU9003173C9?secret=")
    [message] = inbox.messages
    password = password_from_message(message)
    assert body["otp"]["secreto"] not in message.decode(), "the TOTP secret never travels by e-mail"

    token_answer = await token_response(client, "EKU9003173C9", password, totp.current_code(body["otp"]["secreto"]))
    assert token_answer.status_code == 200, token_answer.text
    assert token_answer.headers["cache-control"] == "no-store"
    grant = token_answer.json()
    assert grant["token_type"] == "Bearer" and grant["expires_in"] == 300

    published = (await client.get("/.well-known/jwks.json")).json()
    header = jwt.get_unverified_header(grant["access_token"])
    [jwk] = [k for k in published["keys"] if k["kid"] == header["kid"]]
    claims = jwt.decode(
        grant["access_token"],
        jwt.PyJWK(jwk).key,
        algorithms=["ES256"],
        audience="sia-api",
        issuer="https://sia.infonavit.org.mx",
    )
    assert claims["sub"] == "EKU9003173C9" and claims["exp"] - claims["iat"] == 300

    acuse = await client.get(f"/v1/acuses/{body['folio_acuse']}", headers=_auth(grant["access_token"]))
    assert acuse.status_code == 200, acuse.text
    receipt = acuse.json()
    assert receipt["tipo"] == "contrasena.emision" and receipt["partes"] == ["EKU9003173C9"]
    assert tokens.verify_seal(published, receipt["sello"]) == receipt["cadena_original"].encode()
    assert "30001000000500003415" in receipt["cadena_original"], "the e.firma's certificate number is in the acuse"


async def test_outbox_when_no_smtp(client, eku, app_settings):
    credential = await obtain_password(client, app_settings, eku)
    files = list(app_settings.outbox_dir.glob("*.eml"))
    assert files and all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    assert len(credential.password) >= 40


async def test_mail_failure_creates_no_credential(client, eku, app_settings, connection):
    app_settings.smtp_host, app_settings.smtp_port = "127.0.0.1", 1  # nothing listens there
    try:
        response = await client.post("/v1/contrasenas", json={**await prove(client, eku), "correo": "a@b.mx"})
    finally:
        app_settings.smtp_host = None
    assert response.status_code == 503 and response.json()["code"] == "correo_no_enviado"
    assert await connection.scalar(text("SELECT count(*) FROM credencial")) == 0


# ------------------------------------------------------------------ e.firma checks


async def test_cacx_works_inside_its_validity(client, cacx, app_settings, clock):
    clock.move_to(dt.datetime(2021, 6, 1, 12, tzinfo=dt.UTC))
    credential = await obtain_password(client, app_settings, cacx)
    assert credential.rfc == "CACX7605101P8"


async def test_cacx_is_expired_today(client, cacx):
    response = await client.post("/v1/contrasenas", json={**await prove(client, cacx), "correo": "a@b.mx"})
    assert response.status_code == 422
    assert response.json()["code"] == "certificado_vencido"
    assert "2023-05-27" in response.json()["detail"]


@pytest.mark.parametrize(
    ("cer_file", "rfc", "code"),
    [
        ("EKU9003173C9_csd.cer", "EKU9003173C9", "certificado_no_es_efirma"),
        ("AAA010101AAA_csd.cer", "AAA010101AAA", "certificado_no_es_efirma"),
        ("AAA010101AAA_fiel_expired.cer", "AAA010101AAA", "certificado_vencido"),
        ("SMA0112284B2_csd_t61_subject.cer", "SMA0112284B2", "certificado_no_es_efirma"),
    ],
)
async def test_wrong_certificates_get_their_own_codes(client, eku, sat, cer_file, rfc, code):
    proof = await prove(client, eku, rfc=rfc, cer=(sat / cer_file).read_bytes())
    response = await client.post("/v1/contrasenas", json={**proof, "correo": "a@b.mx"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["code"] == code
    assert rfc in response.json()["detail"], "the answer names the certificate's RFC (even a T61String subject)"


async def test_untrusted_issuer(client, outsider):
    response = await client.post("/v1/contrasenas", json={**await prove(client, outsider), "correo": "a@b.mx"})
    assert response.json()["code"] == "cadena_no_confiable"


async def test_rfc_must_match_the_challenge(client, eku):
    response = await client.post(
        "/v1/contrasenas", json={**await prove(client, eku, rfc="SAT970701NN3"), "correo": "a@b.mx"}
    )
    assert response.json()["code"] == "rfc_no_coincide"
    assert "EKU9003173C9" in response.json()["detail"] and "SAT970701NN3" in response.json()["detail"]


async def test_wrong_signature(client, eku, outsider):
    proof = await prove(client, outsider, rfc="EKU9003173C9", cer=eku.cer)  # signed with another key
    response = await client.post("/v1/contrasenas", json={**proof, "correo": "a@b.mx"})
    assert response.json()["code"] == "firma_invalida"


@pytest.mark.parametrize("certificado", [base64.b64encode(b"\x30\x82garbage").decode(), "no es base64!!", ""])
async def test_garbage_certificate(client, eku, certificado):
    proof = await prove(client, eku)
    response = await client.post("/v1/contrasenas", json={**proof, "certificado": certificado, "correo": "a@b.mx"})
    assert response.status_code == 422
    assert response.json()["code"] == "certificado_ilegible"


async def test_challenge_is_single_use_and_expires(client, eku, app_settings, clock):
    proof = await prove(client, eku)
    assert (await client.post("/v1/contrasenas", json={**proof, "correo": "a@b.mx"})).status_code == 201
    reused = await client.post("/v1/contrasenas/renovacion", json=proof)
    assert reused.status_code == 409 and reused.json()["code"] == "reto_usado"

    proof = await prove(client, eku)
    clock.shift(dt.timedelta(seconds=app_settings.reto_ttl_seconds + 1))
    expired = await client.post("/v1/contrasenas/renovacion", json=proof)
    assert expired.status_code == 410 and expired.json()["code"] == "reto_vencido"

    unknown = await client.post(
        "/v1/contrasenas/renovacion", json={**proof, "reto_id": "00000000-0000-4000-8000-000000000000"}
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "reto_desconocido"


async def test_reto_needs_a_valid_rfc(client):
    response = await client.post("/v1/efirma/retos", json={"rfc": "NOESUNRFC"})
    assert response.status_code == 422 and response.json()["errores"][0]["campo"] == "body.rfc"


# ------------------------------------------------------------------ passwords


async def test_second_password_points_to_renewal(client, eku, app_settings):
    await obtain_password(client, app_settings, eku)
    again = await client.post("/v1/contrasenas", json={**await prove(client, eku), "correo": "a@b.mx"})
    assert again.status_code == 409
    assert again.json()["code"] == "contrasena_activa" and "/v1/contrasenas/renovacion" in again.json()["detail"]


async def test_renewal_kills_the_old_password_and_its_tokens(client, eku, app_settings, clock):
    old = await obtain_password(client, app_settings, eku)
    old_token = await obtain_token(client, old)
    assert (await client.get(f"/v1/acuses/{old.folio_acuse}", headers=_auth(old_token))).status_code == 200

    renewed = await client.post("/v1/contrasenas/renovacion", json=await prove(client, eku))
    assert renewed.status_code == 201, renewed.text
    new_password, new_secret = password_from_outbox(app_settings), renewed.json()["otp"]["secreto"]
    assert new_password != old.password and new_secret != old.secret

    dead = await client.get(f"/v1/acuses/{old.folio_acuse}", headers=_auth(old_token))
    assert dead.status_code == 401 and dead.json()["code"] == "credencial_no_vigente"
    assert 'error="invalid_token"' in dead.headers["www-authenticate"]
    clock.shift(dt.timedelta(seconds=31))
    refused = await token_response(client, eku.rfc, old.password, totp.current_code(old.secret))
    assert refused.status_code == 401
    accepted = await token_response(client, eku.rfc, new_password, totp.current_code(new_secret))
    assert accepted.status_code == 200
    acuse = await client.get(
        f"/v1/acuses/{renewed.json()['folio_acuse']}", headers=_auth(accepted.json()["access_token"])
    )
    assert acuse.json()["tipo"] == "contrasena.renovacion"


async def test_cancellation_kills_tokens_and_needs_a_new_password(client, eku, app_settings):
    credential = await obtain_password(client, app_settings, eku)
    token = await obtain_token(client, credential)
    cancelled = await client.post("/v1/contrasenas/cancelacion", json=await prove(client, eku))
    assert cancelled.status_code == 200 and cancelled.json()["estado"] == "cancelada"
    assert (await client.get(f"/v1/acuses/{credential.folio_acuse}", headers=_auth(token))).status_code == 401
    again = await client.post("/v1/contrasenas/cancelacion", json=await prove(client, eku))
    assert again.status_code == 409 and again.json()["code"] == "sin_contrasena_activa"
    fresh = await obtain_password(client, app_settings, eku)
    assert fresh.password != credential.password


# ------------------------------------------------------------------ token endpoint


async def test_totp_code_is_accepted_once(client, eku, app_settings):
    credential = await obtain_password(client, app_settings, eku)
    code = totp.current_code(credential.secret)
    assert (await token_response(client, eku.rfc, credential.password, code)).status_code == 200
    replay = await token_response(client, eku.rfc, credential.password, code)
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"


async def test_a_replayed_code_is_refused_but_not_counted_toward_the_lockout(client, eku, app_settings, clock):
    """A client restarted within the same 30-second step sends its code again: refused (a replay), but it is no
    guess at the code, so it must not bring the owner closer to the lockout."""
    credential = await obtain_password(client, app_settings, eku)
    code = totp.current_code(credential.secret)
    assert (await token_response(client, eku.rfc, credential.password, code)).status_code == 200
    for _ in range(app_settings.totp_max_failures + 1):
        replay = await token_response(client, eku.rfc, credential.password, code)
        assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"
    clock.shift(dt.timedelta(seconds=30))
    following = await token_response(client, eku.rfc, credential.password, totp.current_code(credential.secret))
    assert following.status_code == 200, following.text


async def test_totp_one_step_of_drift_but_not_two(client, eku, app_settings):
    credential = await obtain_password(client, app_settings, eku)
    two_back = totp.current_code(credential.secret, dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60))
    assert (await token_response(client, eku.rfc, credential.password, two_back)).status_code == 401
    one_back = totp.current_code(credential.secret, dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30))
    assert (await token_response(client, eku.rfc, credential.password, one_back)).status_code == 200


async def test_lockout_after_repeated_failures_and_its_end(client, eku, app_settings, clock):
    credential = await obtain_password(client, app_settings, eku)
    for _ in range(app_settings.totp_max_failures):
        assert (await token_response(client, eku.rfc, credential.password, "000000")).status_code == 401
    locked = await token_response(client, eku.rfc, credential.password, totp.current_code(credential.secret))
    assert locked.status_code == 429
    assert 0 < int(locked.headers["retry-after"]) <= app_settings.lockout_minutes * 60 + 1
    clock.shift(dt.timedelta(minutes=app_settings.lockout_minutes, seconds=1))
    assert (
        await token_response(client, eku.rfc, credential.password, totp.current_code(credential.secret))
    ).status_code == 200


async def test_unknown_rfc_gets_the_same_answer_and_the_same_work(client, eku, app_settings, monkeypatch):
    credential = await obtain_password(client, app_settings, eku)
    calls = []
    real_verify = passwords._hasher.verify
    monkeypatch.setattr(passwords._hasher, "verify", lambda *a: calls.append(a[1]) or real_verify(*a))
    known = await token_response(client, eku.rfc, "contraseña equivocada", "123456")
    unknown = await token_response(client, "SAT970701NN3", credential.password, "123456")
    assert known.status_code == unknown.status_code == 401
    assert known.json() == unknown.json()
    assert len(calls) == 2 and all(h.startswith("$argon2id$") for h in calls), "an Argon2 verify for both"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        (
            {"grant_type": "password", "client_id": "EKU9003173C9", "client_secret": "x", "otp": "1"},
            "unsupported_grant_type",
        ),
        ({"grant_type": "client_credentials", "client_id": "EKU9003173C9"}, "invalid_request"),
        ({}, "invalid_request"),
    ],
)
async def test_token_request_errors_are_oauth_errors(client, form, error):
    response = await client.post("/v1/token", data=form)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == error and response.headers["cache-control"] == "no-store"


async def test_token_with_a_json_body_is_an_oauth_error(client):
    response = await client.post("/v1/token", json={"grant_type": "client_credentials"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("field", ["client_id", "client_secret", "otp", "grant_type"])
async def test_control_characters_in_the_token_form_are_invalid_request(client, field):
    # client_id=A%00B once reached PostgreSQL, which refuses NUL in text: a 500 for anyone, unauthenticated.
    form = {"grant_type": "client_credentials", "client_id": "EKU9003173C9", "client_secret": "x", "otp": "123456"}
    for bad in ("A\x00B", "A\x1fB", "A\x7fB"):
        response = await client.post("/v1/token", data={**form, field: bad})
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"
        assert response.headers["cache-control"] == "no-store"


async def test_totp_secrets_tokens_and_acuses_are_never_stored_by_a_cache(client, eku, app_settings):
    # A shared or browser cache keeping a TOTP secret or a token hands the credential to the next user.
    issued = await client.post("/v1/contrasenas", json={**await prove(client, eku), "correo": "nomina@example.com"})
    renewed = await client.post("/v1/contrasenas/renovacion", json=await prove(client, eku))
    assert issued.status_code == renewed.status_code == 201, renewed.text
    code = totp.current_code(renewed.json()["otp"]["secreto"])
    token = await token_response(client, eku.rfc, password_from_outbox(app_settings), code)
    assert token.status_code == 200, token.text
    folio = issued.json()["folio_acuse"]
    who = _auth(token.json()["access_token"])
    acuse = await client.get(f"/v1/acuses/{folio}", headers=who)
    acuse_pdf = await client.get(f"/v1/acuses/{folio}", headers={**who, "Accept": "application/pdf"})
    for response in (issued, renewed, token, acuse, acuse_pdf):
        assert response.status_code in (200, 201), response.text
        assert response.headers["cache-control"] == "no-store", response.request.url
        assert response.headers["x-content-type-options"] == "nosniff"


# ------------------------------------------------------------------ token attacks


@pytest.fixture
async def valid_token(client, eku, app_settings) -> str:
    return await obtain_token(client, await obtain_password(client, app_settings, eku))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict, claims: dict, signature: bytes = b"") -> str:
    return ".".join((_b64url(json.dumps(header).encode()), _b64url(json.dumps(claims).encode()), _b64url(signature)))


async def _rejected(client, token: str) -> None:
    response = await client.get("/v1/acuses/ACU-20261124-0000000000", headers=_auth(token))
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "token_invalido"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_alg_none_is_rejected(client, valid_token):
    header, claims = (
        jwt.get_unverified_header(valid_token),
        jwt.decode(valid_token, options={"verify_signature": False}),
    )
    await _rejected(client, _forge({**header, "alg": "none"}, claims))


async def test_hs256_signed_with_the_public_key_is_rejected(client, valid_token):
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import serialization

    header, claims = (
        jwt.get_unverified_header(valid_token),
        jwt.decode(valid_token, options={"verify_signature": False}),
    )
    published = (await client.get("/.well-known/jwks.json")).json()
    [jwk] = [k for k in published["keys"] if k["kid"] == header["kid"]]
    public = jwt.PyJWK(jwk).key
    for secret in (
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        json.dumps(jwk).encode(),
    ):
        forged_header = {**header, "alg": "HS256"}
        signing_input = f"{_b64url(json.dumps(forged_header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        await _rejected(client, f"{signing_input}.{_b64url(signature)}")


async def test_expired_token_is_rejected(client, valid_token, clock):
    clock.shift(dt.timedelta(minutes=6))
    await _rejected(client, valid_token)


@pytest.mark.parametrize(
    ("claim", "value"), [("aud", "otra-api"), ("iss", "https://sia.infonavit.org.mx.evil"), ("sub", "XAXX010101000")]
)
async def test_token_with_other_claims_signed_by_an_unknown_key_is_rejected(client, valid_token, claim, value):
    from cryptography.hazmat.primitives.asymmetric import ec

    header, claims = (
        jwt.get_unverified_header(valid_token),
        jwt.decode(valid_token, options={"verify_signature": False}),
    )
    forged = jwt.encode(
        {**claims, claim: value}, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers=header
    )
    await _rejected(client, forged)


@pytest.mark.parametrize(("claim", "value"), [("aud", "otra-api"), ("iss", "https://sia.infonavit.org.mx.evil")])
async def test_wrong_audience_or_issuer_with_our_key_is_rejected(client, app_settings, claim, value):
    """Signed with the service's own key, as a token of another audience or issuer would be."""
    from app.security.keys import load_keys

    keys = load_keys(app_settings)
    claims = {
        "iss": app_settings.token_issuer,
        "aud": app_settings.token_audience,
        "sub": "EKU9003173C9",
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 300,
        "jti": "x",
        "cid": "00000000-0000-4000-8000-000000000000",
        claim: value,
    }
    token = jwt.encode(
        claims,
        keys.tokens.active.private_key,
        algorithm="ES256",
        headers={"kid": keys.tokens.active.kid, "typ": "at+jwt"},
    )
    await _rejected(client, token)


async def test_unknown_kid_and_tampered_payload(client, valid_token):
    header, payload, signature = valid_token.split(".")
    await _rejected(
        client,
        _forge(
            {**jwt.get_unverified_header(valid_token), "kid": "' OR 1=1 --"},
            jwt.decode(valid_token, options={"verify_signature": False}),
        ),
    )
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered = _b64url(json.dumps({**claims, "sub": "SAT970701NN3"}).encode())
    await _rejected(client, f"{header}.{tampered}.{signature}")


async def test_seal_key_cannot_sign_tokens(client, app_settings, valid_token):
    from app.security.keys import load_keys

    keys = load_keys(app_settings)
    claims = jwt.decode(valid_token, options={"verify_signature": False})
    forged = jwt.encode(
        claims,
        keys.sellos.active.private_key,
        algorithm="ES256",
        headers={"kid": keys.sellos.active.kid, "typ": "at+jwt"},
    )
    await _rejected(client, forged)


async def test_missing_or_malformed_authorization(client):
    missing = await client.get("/v1/acuses/ACU-20261124-0000000000")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == 'Bearer realm="sia"'
    await _rejected(client, "no.es.jwt")
    await _rejected(client, "x" * 5000)


# ------------------------------------------------------------------ acuses and keys


async def test_third_party_gets_404_on_someone_elses_acuse(client, eku, cacx, app_settings, clock, sat):
    owner = await obtain_password(client, app_settings, eku)
    clock.move_to(dt.datetime(2021, 6, 1, 12, tzinfo=dt.UTC))
    other = await obtain_password(client, app_settings, cacx)
    other_token = await obtain_token(client, other)
    response = await client.get(f"/v1/acuses/{owner.folio_acuse}", headers=_auth(other_token))
    missing = await client.get("/v1/acuses/ACU-20990101-0000000000", headers=_auth(other_token))
    assert response.status_code == missing.status_code == 404
    assert response.json()["code"] == missing.json()["code"] == "acuse_no_encontrado"


async def test_seal_fails_when_one_byte_of_its_payload_changes(client, eku, app_settings):
    credential = await obtain_password(client, app_settings, eku)
    token = await obtain_token(client, credential)
    receipt = (await client.get(f"/v1/acuses/{credential.folio_acuse}", headers=_auth(token))).json()
    published = (await client.get("/.well-known/jwks.json")).json()
    header, payload, signature = receipt["sello"].split(".")
    assert tokens.verify_seal(published, receipt["sello"]) == receipt["cadena_original"].encode()
    changed = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    changed[10] ^= 0x01
    with pytest.raises(jwt.InvalidSignatureError):
        tokens.verify_seal(published, f"{header}.{_b64url(bytes(changed))}.{signature}")


async def test_rotation_keeps_old_tokens_valid_until_they_expire(client, app_settings, valid_token, clock):
    from app.security.keys import rotate

    rotate(app_settings.keys_dir / "tokens")
    published = (await client.get("/.well-known/jwks.json")).json()
    token_kids = {k["kid"] for k in published["keys"]}
    assert jwt.get_unverified_header(valid_token)["kid"] in token_kids and len(token_kids) >= 3
    assert (await client.get("/v1/acuses/ACU-20261124-0000000000", headers=_auth(valid_token))).status_code == 404
    clock.shift(dt.timedelta(minutes=app_settings.token_ttl_minutes + 2))
    later = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert jwt.get_unverified_header(valid_token)["kid"] not in later


async def test_efirma_validation_runs_off_the_event_loop(client, eku, monkeypatch):
    threads = []
    real = asyncio.to_thread

    async def spy(func, *args, **kwargs):
        threads.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", spy)
    await client.post("/v1/contrasenas", json={**await prove(client, eku), "correo": "a@b.mx"})
    assert "validate_efirma" in threads and "hash" in threads
