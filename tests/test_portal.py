"""Portal SIA's server side (DESIGN §1, §5): the page served offline under a strict CSP, and the browser session
(backend for frontend) with the attacks on it: a change with no Origin or a foreign one, a session past its idle
or absolute timeout (fixed clock), a session after its credential is renewed or cancelled, a signed-out or forged
cookie, the cookie as a /v1 credential, TOTP guessing through the portal. Then the employer's and developer's
routes, which call the API's own flows."""

import datetime as dt
import hashlib
import io
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx2
import pytest
import time_machine
from asgi_lifespan import LifespanManager
from pypdf import PdfReader
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.deps import committed, get_session
from app.main import create_app
from app.models import Certificacion, Credencial, Nrp, Patron, RelacionConfianza, SesionPortal
from app.problems import PROBLEM_MEDIA_TYPE
from app.routers.portal import STATIC
from app.security import totp
from tests import documented_problems
from tests.identity_helpers import Credential, Efirma, obtain_password, prove, token_response

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)  # EKU9003173C9's FIEL is valid until 2027-05-17
REPO = Path(__file__).resolve().parents[1]
ORIGIN = {"Origin": "http://testserver"}
EMPLOYER = "EKU9003173C9"
DEV = "XIQB891116QE4"
NRPS = ["Y6067072104", "Y6199977101", "Y6075623106"]


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


@pytest.fixture
def app_settings(settings, tmp_path):
    return settings.model_copy(update={"data_dir": tmp_path})


@pytest.fixture
def eku(sat: Path) -> Efirma:
    return Efirma.from_files(EMPLOYER, sat / "EKU9003173C9_fiel.cer", sat / "EKU9003173C9_fiel.key")


@pytest.fixture
async def employer(client, app_settings, session, eku) -> Credential:
    """EKU9003173C9 in the employer registry with three NRPs, holding a password obtained with its e.firma."""
    session.add(Patron(rfc=EMPLOYER, razon_social="Escuela Kemper Urgate, S.A. de C.V."))
    await session.flush()
    session.add_all(Nrp(nrp=n, rfc_patron=EMPLOYER) for n in NRPS)
    await session.flush()
    return await obtain_password(client, app_settings, eku)


@pytest.fixture
async def developer(session) -> None:
    """A certified developer with an active credential (how it got them is another test's business)."""
    session.add(
        Credencial(
            id=uuid.uuid4(),
            rfc=DEV,
            correo="dev@example.com",
            nombre="BERENICE XIQUE QUINTERO",
            hash_contrasena="-",
            totp_cifrado=b"-",
            estado="activa",
            certificado_numero="1",
            creada_en=NOW,
        )
    )
    session.add(
        Certificacion(
            id=uuid.uuid4(),
            rfc=DEV,
            estado="aprobada",
            creada_en=NOW,
            aprobada_en=NOW,
            vigente_hasta=NOW + dt.timedelta(days=365),
        )
    )
    await session.flush()


async def sign_in(client, credential: Credential, clock, *, headers=ORIGIN) -> httpx2.Response:
    clock.shift(31)  # a fresh TOTP step: each code opens one session only (replay)
    body = {"rfc": credential.rfc, "contrasena": credential.password, "otp": totp.current_code(credential.secret)}
    return await client.post("/portal/api/sesion", json=body, headers=headers)


async def signed_in(client, credential, clock) -> None:
    response = await sign_in(client, credential, clock)
    assert response.status_code == 200, response.text


def assert_problem(response: httpx2.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["code"] == code


# ------------------------------------------------------------------ the page, offline, under a strict CSP


async def test_the_page_is_served_with_a_strict_csp_and_no_inline_code(client):
    response = await client.get("/portal")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'" and directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and "unsafe" not in csp and "http" not in csp
    html = response.text
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="/portal/static/' in attrs and body.strip() == "" for attrs, body in scripts)
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handlers would need 'unsafe-inline'"
    assert "style=" not in html and "<style" not in html
    for asset in re.findall(r'(?:src|href)="(/portal/static/[^"]+)"', html):
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert served.headers["content-security-policy"] == csp


def _own_files() -> list[Path]:
    return [p for p in STATIC.rglob("*") if p.is_file() and "vendor" not in p.parts]


def test_the_page_loads_nothing_from_another_host():
    """No CDN, no web font, no analytics: the only URLs in our own files are this service's paths (and the SVG
    namespace, which is a name, not a request)."""
    for path in _own_files():
        source = path.read_text(encoding="utf-8")
        urls = set(re.findall(r"https?://[^\s\"'`)]+", source)) - {"http://www.w3.org/2000/svg"}
        assert not urls, f"{path.name} names {urls}"
        assert "@import" not in source and "@font-face" not in source
        # Text only as text nodes: no HTML assembled from strings (the service's data can never become markup).
        assert "innerHTML" not in source and "insertAdjacentHTML" not in source, path.name


def test_vendored_libraries_are_pinned_licensed_and_packaged():
    """Each vendored file is listed in vendor/README.md with its npm package@version, license file and SHA-256:
    a file changed without updating the README fails here."""
    vendor = STATIC / "vendor"
    rows = re.findall(
        r"^\| `([^`]+)` \| `([^`]+@[\d.]+)`.*?`([^`]+-LICENSE)` \| `([0-9a-f]{64})` \|$",
        (vendor / "README.md").read_text(encoding="utf-8"),
        re.M,
    )
    assert {package for _, package, _, _ in rows} == {"node-forge@1.4.3", "qrcode-generator@2.0.4"}
    for name, _, license_file, digest in rows:
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
        assert (vendor / license_file).stat().st_size > 500
    listed = {name for name, *_ in rows} | {license_file for *_, license_file, _ in rows} | {"README.md"}
    assert {p.name for p in vendor.iterdir()} == listed, "every vendored file is accounted for"
    assert '"portal/static/*"' in (REPO / "pyproject.toml").read_text(encoding="utf-8")


# ------------------------------------------------------------------ sign-in and the cookie


async def test_sign_in_opens_a_server_side_session_behind_an_httponly_strict_cookie(client, employer, clock, session):
    response = await sign_in(client, employer, clock)
    assert response.status_code == 200, response.text
    assert response.json()["rfc"] == EMPLOYER and response.json()["es_patron"] is True
    assert "eyJ" not in response.text, "the page never holds a bearer token"
    assert response.headers["cache-control"] == "no-store"
    cookie = response.headers["set-cookie"]
    attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "path", "samesite", "max-age"} <= attributes and "samesite=strict" in cookie.lower()
    assert "path=/portal" in cookie.lower() and "secure" not in attributes  # plain http: development
    value = client.cookies["sia_sesion"]
    stored = list(await session.scalars(select(SesionPortal.id)))
    assert stored == [hashlib.sha256(value.encode()).digest()], "only the cookie's digest is kept"
    assert (await client.get("/portal/api/sesion")).json()["rfc"] == EMPLOYER
    client.cookies.clear()
    assert (await client.get("/portal/api/sesion")).status_code == 204  # nobody signed in: no error, no body


@pytest.fixture
async def client_with(app_settings, connection):
    """Factory: a client of an app with some settings changed (an HTTPS public URL, a tighter limit...)."""
    async with AsyncExitStack() as stack:

        async def make(base_url: str = "http://testserver", **changes) -> httpx2.AsyncClient:
            app = create_app(app_settings.model_copy(update=changes))

            async def session_in_test_transaction() -> AsyncIterator[AsyncSession]:
                async with (
                    AsyncSession(bind=connection, join_transaction_mode="create_savepoint") as session,
                    committed(session),
                ):
                    yield session

            app.dependency_overrides[get_session] = session_in_test_transaction
            manager = await stack.enter_async_context(LifespanManager(app))
            transport = httpx2.ASGITransport(app=manager.app, raise_app_exceptions=False)
            hooks = documented_problems.event_hooks()
            return await stack.enter_async_context(
                httpx2.AsyncClient(transport=transport, base_url=base_url, event_hooks=hooks)
            )

        yield make


@pytest.fixture
async def https_client(client_with) -> httpx2.AsyncClient:
    """The service behind a TLS proxy (SIA_PUBLIC_URL=https://...)."""
    return await client_with("https://sia.example", public_url="https://sia.example")


async def test_behind_https_the_cookie_is_secure_and_host_only(https_client, employer, clock):
    response = await sign_in(https_client, employer, clock, headers={"Origin": "https://sia.example"})
    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-sia_sesion=") and "; secure" in cookie.lower() and "path=/;" in cookie.lower()
    assert (await https_client.get("/portal/api/sesion")).status_code == 200
    # Behind the proxy only the public origin counts, not whatever Host the request names.
    for origin in ("http://sia.example", "https://proxy.internal"):
        headers = {"Origin": origin, "Host": origin.split("://")[1]}
        assert_problem(await https_client.delete("/portal/api/sesion", headers=headers), 403, "origen_no_permitido")


async def test_signing_in_again_replaces_the_browsers_session(client, employer, clock, session):
    await signed_in(client, employer, clock)
    first = client.cookies["sia_sesion"]
    await signed_in(client, employer, clock)
    assert client.cookies["sia_sesion"] != first
    assert len(list(await session.scalars(select(SesionPortal.id)))) == 1


async def test_wrong_code_is_the_token_routes_answer_and_counts_toward_its_lockout(client, employer, clock):
    """Sign-in is /v1/token's own credential check: five wrong codes through the portal lock the RFC for both."""
    clock.shift(31)
    wrong = {"rfc": EMPLOYER, "contrasena": employer.password, "otp": "000000"}
    if totp.current_code(employer.secret) == "000000":
        wrong["otp"] = "111111"
    for _ in range(5):
        assert_problem(
            await client.post("/portal/api/sesion", json=wrong, headers=ORIGIN), 401, "credenciales_incorrectas"
        )
    locked = await sign_in(client, employer, clock)
    assert_problem(locked, 429, "rfc_bloqueado")
    assert int(locked.headers["retry-after"]) > 0
    clock.shift(31)
    by_api = await token_response(client, EMPLOYER, employer.password, totp.current_code(employer.secret))
    assert by_api.status_code == 429


async def test_the_portal_spends_the_same_rate_limit_bucket_as_the_token_route(client_with, employer, clock):
    """Not a way around /v1/token's limit: attempts through either door count together."""
    limited = await client_with(rate_limit_token="3/minute")
    for _ in range(2):
        response = await token_response(limited, EMPLOYER, "x" * 40, "123456")
        assert response.status_code == 401
    wrong = {"rfc": EMPLOYER, "contrasena": "x" * 40, "otp": "123456"}
    assert_problem(
        await limited.post("/portal/api/sesion", json=wrong, headers=ORIGIN), 401, "credenciales_incorrectas"
    )
    refused = await limited.post("/portal/api/sesion", json=wrong, headers=ORIGIN)
    assert_problem(refused, 429, "limite_de_tasa")
    assert "retry-after" in refused.headers


async def test_an_unknown_rfc_gets_the_same_answer_as_a_wrong_password(client, employer, clock):
    unknown = await client.post(
        "/portal/api/sesion", json={"rfc": "GODE561231GR8", "contrasena": "x" * 40, "otp": "123456"}, headers=ORIGIN
    )
    wrong = await client.post(
        "/portal/api/sesion", json={"rfc": EMPLOYER, "contrasena": "x" * 40, "otp": "123456"}, headers=ORIGIN
    )
    assert_problem(unknown, 401, "credenciales_incorrectas")
    assert unknown.json()["detail"] == wrong.json()["detail"]


# ------------------------------------------------------------------ attacks on the session


@pytest.mark.parametrize("origin", [None, "https://evil.example", "null", "http://testserver.evil.example"])
async def test_a_change_without_this_origin_is_refused_even_with_the_cookie(
    client, employer, developer, clock, session, origin
):
    await signed_in(client, employer, clock)
    headers = {"Origin": origin} if origin else {}
    body = {"rfc_desarrollador": DEV, "vigencia_fin": (NOW + dt.timedelta(days=30)).isoformat()}
    assert_problem(await client.post("/portal/api/relaciones", json=body, headers=headers), 403, "origen_no_permitido")
    assert await session.scalar(select(RelacionConfianza.id)) is None, "nothing was created"

    created = await client.post("/portal/api/relaciones", json=body, headers=ORIGIN)
    assert created.status_code == 201, created.text
    revoke = await client.delete(f"/portal/api/relaciones/{created.json()['id']}", headers=headers)
    assert_problem(revoke, 403, "origen_no_permitido")
    assert (await client.get("/portal/api/relaciones")).json()[0]["estado"] == "vigente"
    # Signing in is a change too (login CSRF would sign the victim into the attacker's account).
    assert_problem(await sign_in(client, employer, clock, headers=headers), 403, "origen_no_permitido")


async def test_a_session_ends_after_15_minutes_unused(client, employer, clock):
    await signed_in(client, employer, clock)
    clock.shift(14 * 60)
    assert (await client.get("/portal/api/sesion")).status_code == 200  # used: the idle clock restarts
    clock.shift(14 * 60)
    assert (await client.get("/portal/api/sesion")).status_code == 200
    clock.shift(15 * 60 + 1)
    assert_problem(await client.get("/portal/api/relaciones"), 401, "sesion_requerida")


async def test_a_session_ends_8_hours_after_sign_in_however_busy(client, employer, clock):
    await signed_in(client, employer, clock)
    for _ in range(47):  # every 10 minutes for 7 h 50 min
        clock.shift(10 * 60)
        assert (await client.get("/portal/api/patron")).status_code == 200
    clock.shift(10 * 60 + 1)
    # The browser drops the cookie at Max-Age; one who kept its value must meet the server's own limit.
    kept = next(c for c in client.cookies.jar if c.name == "sia_sesion").value
    client.cookies.clear()
    client.cookies.set("sia_sesion", kept, path="/portal")
    assert_problem(await client.get("/portal/api/patron"), 401, "sesion_requerida")


async def test_renewing_the_password_ends_the_session_at_once(client, employer, clock, eku):
    await signed_in(client, employer, clock)
    renewed = await client.post("/v1/contrasenas/renovacion", json=await prove(client, eku))
    assert renewed.status_code == 201, renewed.text
    assert_problem(await client.get("/portal/api/relaciones"), 401, "sesion_requerida")
    assert_problem(await client.get("/portal/api/patron"), 401, "sesion_requerida")


async def test_cancelling_the_password_ends_the_session_at_once(client, employer, clock, eku):
    await signed_in(client, employer, clock)
    cancelled = await client.post("/v1/contrasenas/cancelacion", json=await prove(client, eku))
    assert cancelled.status_code == 200, cancelled.text
    assert_problem(await client.get("/portal/api/relaciones"), 401, "sesion_requerida")


async def test_sign_out_ends_the_session_on_the_server_not_only_in_the_browser(client, employer, clock):
    await signed_in(client, employer, clock)
    stolen = client.cookies["sia_sesion"]
    out = await client.delete("/portal/api/sesion", headers=ORIGIN)
    assert out.status_code == 204 and "max-age=0" in out.headers["set-cookie"].lower()
    client.cookies.set("sia_sesion", stolen, path="/portal")
    assert_problem(await client.get("/portal/api/relaciones"), 401, "sesion_requerida")


@pytest.mark.parametrize("value", ["", "x", "A" * 43, "A" * 5000, "%00%ff", "' OR '1'='1"])
async def test_forged_cookies_are_refused(client, value):
    client.cookies.set("sia_sesion", value, path="/portal")
    assert_problem(await client.get("/portal/api/relaciones"), 401, "sesion_requerida")


async def test_the_cookie_is_no_api_credential_and_a_token_is_no_portal_session(client, employer, clock):
    await signed_in(client, employer, clock)
    cookie = client.cookies["sia_sesion"]
    assert_problem(
        await client.get("/v1/relaciones-confianza", headers={"Cookie": f"sia_sesion={cookie}"}), 401, "no_autenticado"
    )
    clock.shift(31)
    token = (await token_response(client, EMPLOYER, employer.password, totp.current_code(employer.secret))).json()
    client.cookies.clear()
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert_problem(await client.get("/portal/api/relaciones", headers=bearer), 401, "sesion_requerida")


# ------------------------------------------------------------------ the employer's and developer's routes


async def test_the_employer_grants_downloads_and_revokes_through_the_portal(
    client, employer, developer, clock, session
):
    await signed_in(client, employer, clock)
    patron = (await client.get("/portal/api/patron")).json()
    assert patron["razon_social"].startswith("Escuela Kemper") and patron["nrps"] == sorted(NRPS)
    card = (await client.get(f"/portal/api/desarrolladores/{DEV}")).json()
    assert card["nombre"] == "BERENICE XIQUE QUINTERO" and card["certificado"] is True
    assert_problem(await client.get("/portal/api/desarrolladores/GODE561231GR8"), 422, "desarrollador_sin_contrasena")

    # Dates as a person picks them: calendar days, Mexico City time.
    body = {"rfc_desarrollador": DEV, "nrps": NRPS[:2], "vigencia_fin": "2027-01-01T00:00:00"}
    created = await client.post("/portal/api/relaciones", json=body, headers=ORIGIN)
    assert created.status_code == 201, created.text
    relacion = created.json()
    fin = dt.datetime.fromisoformat(relacion["vigencia_fin"])
    assert fin == dt.datetime(2027, 1, 1, 6, tzinfo=dt.UTC)  # midnight in Mexico City
    listed = (await client.get("/portal/api/relaciones?rol=patron")).json()
    assert [r["id"] for r in listed] == [relacion["id"]]

    pdf = await client.get(f"/portal/api/acuses/{relacion['folio_acuse']}.pdf")
    assert pdf.headers["content-type"] == "application/pdf" and "attachment" in pdf.headers["content-disposition"]
    words = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert relacion["folio_acuse"] in words and DEV in words
    folios = [a["folio"] for a in (await client.get("/portal/api/acuses")).json()]
    assert relacion["folio_acuse"] in folios and employer.folio_acuse in folios
    assert_problem(await client.get("/portal/api/acuses/ACU-20260101-0000000000.pdf"), 404, "acuse_no_encontrado")

    revoked = await client.delete(f"/portal/api/relaciones/{relacion['id']}", headers=ORIGIN)
    assert revoked.json()["estado"] == "revocada" and revoked.json()["folio_acuse_revocacion"]
    eventos = (await client.get("/portal/api/auditoria")).json()["eventos"]
    assert [e["accion"] for e in eventos][:2] == ["relacion.revocada", "relacion.creada"]
    assert_problem(await client.get("/portal/api/auditoria?desde=2026-12-01&hasta=2026-11-01"), 422, "rango_invalido")


async def test_a_developer_opens_and_cancels_a_certification_attempt(client, app_settings, session, clock, eku):
    """EKU9003173C9 with no entry in the registry: a developer only."""
    credential = await obtain_password(client, app_settings, eku)
    await signed_in(client, credential, clock)
    assert (await client.get("/portal/api/sesion")).json()["es_patron"] is False
    assert_problem(await client.get("/portal/api/patron"), 403, "no_es_patron")
    opened = await client.post("/portal/api/certificaciones", headers=ORIGIN)
    assert opened.status_code == 201, opened.text
    attempts = (await client.get("/portal/api/certificaciones")).json()
    assert [a["estado"] for a in attempts] == ["en_curso"] and len(attempts[0]["escenarios"]) == 4
    cancelled = await client.delete(f"/portal/api/certificaciones/{opened.json()['id']}", headers=ORIGIN)
    assert cancelled.json()["estado"] == "cancelada"
    await session.execute(text("SELECT 1"))


def test_portal_routes_stay_out_of_the_public_contract(app):
    paths = app.openapi()["paths"]
    assert not [p for p in paths if p.startswith("/portal")]


# ------------------------------------------------------------------ the acuse a person can verify


async def test_the_qr_target_shows_a_browser_what_the_acuse_certifies(client, employer, developer, clock, session):
    # A razón social with markup in it: the page prints it as text.
    await session.execute(
        text("UPDATE patron SET razon_social = :r WHERE rfc = :rfc"),
        {"r": "Escuela <script>alert(1)</script> Kemper", "rfc": EMPLOYER},
    )
    await signed_in(client, employer, clock)
    body = {"rfc_desarrollador": DEV, "nrps": NRPS[:1], "vigencia_fin": "2027-01-01T00:00:00"}
    folio = (await client.post("/portal/api/relaciones", json=body, headers=ORIGIN)).json()["folio_acuse"]
    client.cookies.clear()  # anyone holding the paper: no session, no token
    sello = (await session.scalar(text("SELECT sello FROM acuse WHERE folio = :f"), {"f": folio}))[-24:]
    url = f"/v1/acuses/{folio}/verificacion?sello={sello}"

    page = await client.get(url, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]  # none needed, none allowed
    html = page.text
    for fact in (
        folio,
        EMPLOYER,
        DEV,
        "BERENICE XIQUE QUINTERO",
        NRPS[0],
        "Acuse de registro de relación de confianza",
        "01/01/2027 00:00:00",
    ):
        assert fact in html, fact
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "@" not in html, "no e-mail"

    as_json = await client.get(url)  # API clients: JSON as before, no parties
    assert as_json.json() == {
        "folio": folio,
        "tipo": "relacion.creacion",
        "emitido_en": as_json.json()["emitido_en"],
        "valido": True,
    }
    wrong = await client.get(f"/v1/acuses/{folio}/verificacion?sello={'A' * 24}", headers={"Accept": "text/html"})
    assert_problem(wrong, 404, "acuse_no_verificable")


async def test_the_verification_page_of_a_password_acuse_leaves_the_email_out(client, employer, session):
    sello = await session.scalar(text("SELECT sello FROM acuse WHERE folio = :f"), {"f": employer.folio_acuse})
    page = await client.get(
        f"/v1/acuses/{employer.folio_acuse}/verificacion?sello={sello[-24:]}", headers={"Accept": "text/html"}
    )
    assert page.status_code == 200 and "Acuse de emisión de contraseña" in page.text and EMPLOYER in page.text
    assert "example.com" not in page.text and "Correo" not in page.text


# ------------------------------------------------------------------ the guide for people


def test_the_guide_shows_every_step_with_the_names_the_page_uses():
    guide = (REPO / "docs" / "guia-portal.md").read_text(encoding="utf-8")
    assert "(docs/guia-portal.md)" in (REPO / "README.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", guide)
    assert len(images) >= 8 and all((REPO / "docs" / image).is_file() for image in images)
    page = (STATIC / "js" / "app.js").read_text(encoding="utf-8")
    for name in re.findall(r"\*\*([^*]+)\*\*", guide):
        if name[0].isupper() and name not in {"No", "Portal SIA"} and not name.startswith(("8 ", "15 ")):
            assert f'"{name}"' in page or f"`{name}" in page, f"the guide names {name!r}; the page does not"


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_text_colours_meet_wcag_aa_contrast():
    css = (STATIC / "portal.css").read_text(encoding="utf-8")
    colours = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6});", css))
    colours["blanco"] = "#ffffff"
    pairs = [
        ("texto", "fondo"),
        ("texto", "blanco"),
        ("blanco", "guinda"),
        ("blanco", "guinda-oscuro"),
        ("enlace", "blanco"),
        ("tenue", "blanco"),
        ("tenue", "fondo"),
        ("ok", "blanco"),
        ("error", "blanco"),
    ]
    for text_colour, background in pairs:
        light, dark = sorted((_luminance(colours[text_colour]), _luminance(colours[background])), reverse=True)
        assert (light + 0.05) / (dark + 0.05) >= 4.5, (text_colour, background)
