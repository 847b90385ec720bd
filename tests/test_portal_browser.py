"""The Portal SIA in a real browser (Debian's Chromium driven by Playwright, as tests/test_docs_browser.py): against
`sia serve --upgrade --demo` (what `make run` starts), a person does everything with the mouse and keyboard.

The developer obtains its password with its demo e.firma and opens a certification attempt. The employer chooses its
.cer and .key, sees the certificate's data, signs in the browser (every request the page makes is recorded: none
carries the key or its password), reads its TOTP secret from the page, takes the password from the outbox, signs
in, grants the developer a relationship, downloads and reads the acuse PDF, sees the developer's read in the audit
table and revokes. SAT's real test .key (PBES2 + 3DES) is decrypted in the page too. No console errors, no request
to another host; screenshots under artifacts/portal-*.png."""

import asyncio
import base64
import datetime as dt
import email
import io
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx2
import pyotp
import pytest
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import ConsoleMessage, Page, Request, expect, sync_playwright
from pypdf import PdfReader

from app.db import asyncpg_dsn
from app.demo import demo_patrones
from app.efirma_demo import DEMO_KEY_PASSWORD
from tests import browser as browser_tools
from tests.identity_helpers import password_from_message
from tests.live import live_server

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts"
REQUESTS_NOTE = ARTIFACTS / "portal-efirma-solicitudes.txt"
DEVELOPER = "XIQB891116QE4"
SAT_RFC = "EKU9003173C9"


def _sql(url: str, query: str, *args) -> list:
    async def run() -> list:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    # Playwright's sync API keeps an event loop running in this thread: the query gets a thread of its own.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def _password_for(outbox: Path, rfc: str) -> str:
    """The newest e-mail to this RFC in the outbox: what the person reads in their mailbox."""
    for path in sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns, reverse=True):
        message = email.message_from_bytes(path.read_bytes())
        if rfc in message["Subject"]:
            return password_from_message(path.read_bytes())
    raise AssertionError(f"no e-mail for {rfc} in {outbox}")


_USED_STEPS: dict[str, int] = {}
TIMINGS: dict[str, float] = {}  # measured and reported (in the note), never asserted


def _fresh_code(secret: str) -> str:
    """The code an authenticator app shows now. The service takes each 30 s step once per credential, so a step
    this test already used is waited out, and so is one about to end (the browser needs a moment to submit)."""
    while int(time.time() // 30) <= _USED_STEPS.get(secret, -1) or 30 - time.time() % 30 < 4:
        time.sleep(30 - time.time() % 30 + 0.2)
    _USED_STEPS[secret] = int(time.time() // 30)
    return pyotp.TOTP(secret).now()


# Every control a person can reach has a name (its <label>, aria-label or text): what a screen reader announces.
UNNAMED_CONTROLS = """() => [...document.querySelectorAll('input, select, textarea, button, a[href]')]
  .filter((e) => !e.hidden && !((e.labels ? [...e.labels].map((l) => l.textContent).join('') : '')
    || e.getAttribute('aria-label') || e.textContent).trim())
  .map((e) => e.outerHTML.slice(0, 100))"""


def _shot(page: Page, name: str, **options) -> None:
    """A screenshot of the page as it is, after checking that each of its controls is named."""
    assert page.evaluate(UNNAMED_CONTROLS) == [], name
    page.screenshot(path=ARTIFACTS / f"portal-{name}.png", full_page=True, **options)


def _efirma_step(page: Page, base: str, cer: Path, key: Path, rfc: str, correo: str, shot: str | None = None) -> dict:
    """Chooses the files, checks the certificate's data shows before anything is sent, signs, obtains the password.
    Returns what the page showed."""
    page.goto(f"{base}/portal")
    page.get_by_role("navigation", name="Secciones").get_by_role("link", name="Contraseña con e.firma").click()
    page.get_by_label("Certificado (.cer)").set_input_files(cer)
    card = page.get_by_role("region", name="Datos del certificado")
    expect(card).to_contain_text(rfc)
    expect(card).to_contain_text("e.firma (FIEL)")
    expect(page.get_by_label("RFC", exact=True)).to_have_value(rfc)
    page.get_by_label("Llave privada (.key)").set_input_files(key)
    page.get_by_label("Contraseña de la llave privada").fill(DEMO_KEY_PASSWORD.decode())
    page.get_by_label("Correo electrónico").fill(correo)
    if shot:
        _shot(page, shot)
    started = time.monotonic()
    page.get_by_role("button", name="Obtener contraseña").click()
    expect(page.get_by_role("heading", name="Listo: registre su código OTP")).to_be_visible(timeout=20_000)
    TIMINGS[f"{key.name}: abrir la llave, pedir el reto, firmar y obtener la contraseña"] = time.monotonic() - started
    expect(page.get_by_text("La contraseña llega por correo")).to_be_visible()
    expect(page.get_by_role("img", name=f"Código QR del secreto OTP de {rfc}")).to_be_visible()
    return {"secreto": page.locator("#secreto-otp").inner_text().strip()}


def _sign_in(page: Page, base: str, rfc: str, password: str, secret: str) -> None:
    page.goto(f"{base}/portal#/entrar")
    page.get_by_label("RFC", exact=True).fill(rfc)
    page.get_by_label("Contraseña", exact=True).fill(password)
    page.get_by_label("Código OTP").fill(_fresh_code(secret))
    page.get_by_role("button", name="Entrar").click()
    expect(page.get_by_role("button", name="Cerrar sesión")).to_be_visible()


def _secrets_of(key: Path) -> list[bytes]:
    """Everything that would betray the private key in a request body: the password, the .key file (raw and
    base64) and the decrypted key (DER, base64, and PEM body)."""
    raw = key.read_bytes()
    private = serialization.load_der_private_key(raw, DEMO_KEY_PASSWORD)
    der = private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return [
        DEMO_KEY_PASSWORD,
        raw[16:80],
        base64.b64encode(raw)[:60],
        der[32:96],
        base64.b64encode(der)[40:100],
        base64.b64encode(der[200:260]),
    ]


@pytest.mark.slow
def test_the_employer_and_the_developer_do_everything_in_the_browser(chromium, new_database, tmp_path, sat):
    url = new_database()
    data = tmp_path / "srv"
    # The demo CA is trusted by default; SAT's test CAs beside it let the browser's SAT e.firma reach a 201 too.
    shutil.copytree(sat / "ca", data / "efirma-demo" / "ca")
    employer = demo_patrones(4)[0]
    outside: list[str] = []
    errors: list[str] = []
    recorded: list[Request] = []
    ARTIFACTS.mkdir(exist_ok=True)

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text} ({message.location.get('url')})")

    with live_server(url, data, "--upgrade", "--demo") as base, sync_playwright() as playwright:
        demo = data / "efirma-demo"
        browser = browser_tools.launch(playwright, chromium)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block", locale="es-MX")
        context.route("**/*", browser_tools.outside_loopback_blocked(outside))
        page = context.new_page()
        page.on("console", console)
        page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
        page.on("request", lambda request: recorded.append(request))  # every request; each step reads its slice
        try:
            # ---------------------------------------------------------------- the developer
            dev = _efirma_step(
                page, base, demo / f"{DEVELOPER}.cer", demo / f"{DEVELOPER}.key", DEVELOPER, "dev@example.com"
            )
            dev_password = _password_for(data / "outbox", DEVELOPER)
            _sign_in(page, base, DEVELOPER, dev_password, dev["secreto"])
            expect(page.get_by_role("heading", name="Desarrollador", exact=True)).to_be_visible()
            page.get_by_role("button", name="Abrir intento de certificación").click()
            expect(page.get_by_role("table", name="Escenarios")).to_be_visible()
            expect(page.get_by_role("cell", name="descarga_completa", exact=True)).to_be_visible()
            _shot(page, "desarrollador")
            page.get_by_role("button", name="Cerrar sesión").click()
            expect(page.get_by_role("button", name="Entrar")).to_be_visible()
            # Certifying runs the developer's software against the sandbox (tests/test_certificacion.py); here the
            # outcome is given, as an approved certification.
            now = dt.datetime.now(dt.UTC)
            _sql(
                url,
                "INSERT INTO certificacion (id, rfc, estado, creada_en, aprobada_en, vigente_hasta) "
                "VALUES ($1, $2, 'aprobada', $3, $3, $4)",
                uuid.uuid4(),
                DEVELOPER,
                now,
                now + dt.timedelta(days=365),
            )

            # ---------------------------------------------------------------- the employer's e.firma, recorded
            page.goto(f"{base}/portal#/contrasena")
            recorded.clear()
            key = demo / f"{employer.rfc}.key"
            mine = _efirma_step(page, base, demo / f"{employer.rfc}.cer", key, employer.rfc, "rh@example.com", "efirma")
            step = list(recorded)
            _shot(page, "otp")

            lines = []
            forbidden = _secrets_of(key)
            for request in step:
                body = request.post_data_buffer or b""
                lines.append(f"{request.method} {request.url.removeprefix(base)}  ({len(body)} bytes)")
                assert not any(secret in body or secret in request.url.encode() for secret in forbidden), request.url
                for name, value in request.headers.items():
                    assert not any(secret in value.encode() for secret in forbidden), name
            posts = [(r.method, r.url.removeprefix(base)) for r in step if r.method != "GET"]
            assert posts == [("POST", "/v1/efirma/retos"), ("POST", "/v1/contrasenas")], posts
            sent = next(r for r in step if r.url.endswith("/v1/contrasenas")).post_data_json
            assert set(sent) == {"reto_id", "certificado", "firma", "correo"}
            assert base64.b64decode(sent["certificado"]) == (demo / f"{employer.rfc}.cer").read_bytes()

            # ---------------------------------------------------------------- sign in, NRPs, a relationship
            password = _password_for(data / "outbox", employer.rfc)
            _sign_in(page, base, employer.rfc, password, mine["secreto"])
            expect(page.get_by_role("heading", name=employer.razon_social)).to_be_visible()
            for nrp in employer.nrps:
                expect(page.get_by_role("listitem").filter(has_text=nrp)).to_be_visible()
            page.get_by_role("button", name="Nueva relación de confianza").click()
            page.get_by_label("RFC del desarrollador").fill(DEVELOPER)
            page.get_by_label("RFC del desarrollador").press("Tab")
            expect(page.get_by_text("BERENICE XIQUE QUINTERO")).to_be_visible()
            expect(page.get_by_text("vigente hasta el")).to_be_visible()
            granted = sorted(employer.nrps)[:2]  # the page lists them as the registry does, sorted
            for nrp in sorted(employer.nrps)[2:]:
                page.get_by_label(nrp).uncheck()
            page.get_by_label("Vigente hasta").fill(f"{now.year + 1}-06-30")
            page.get_by_label("Vigente hasta").press("Tab")
            sentence = page.locator(".frase")
            expect(sentence).to_contain_text(f"Usted autoriza a BERENICE XIQUE QUINTERO ({DEVELOPER}) a consultar")
            expect(sentence).to_contain_text(", ".join(granted))
            expect(sentence).to_contain_text(f"al 30 de junio de {now.year + 1}")
            _shot(page, "nueva-relacion")
            page.get_by_role("button", name="Crear relación").click()
            expect(page.get_by_text("Relación creada con")).to_be_visible()
            row = page.get_by_role("row").filter(has_text=DEVELOPER)
            expect(row).to_contain_text("Vigente")
            _shot(page, "patron")

            with page.expect_download() as download:
                row.get_by_role("link", name="Descargar acuse (PDF)").click()
            pdf = Path(download.value.path()).read_bytes()
            text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
            assert employer.rfc in text and DEVELOPER in text and all(n in text for n in granted)
            # What the PDF's QR code opens, in the browser: the facts to compare with the paper.
            folio = next(w for w in text.split() if w.startswith("ACU-"))
            [acuse] = _sql(url, "SELECT sello FROM acuse WHERE folio = $1", folio)
            verificacion = context.new_page()
            verificacion.goto(f"{base}/v1/acuses/{folio}/verificacion?sello={acuse['sello'][-24:]}")
            expect(
                verificacion.get_by_role("heading", name="Acuse de registro de relación de confianza")
            ).to_be_visible()
            expect(verificacion.get_by_text("BERENICE XIQUE QUINTERO")).to_be_visible()
            verificacion.screenshot(path=ARTIFACTS / "portal-verificacion.png", full_page=True)
            verificacion.close()

            # ---------------------------------------------------------------- the developer reads; the audit shows it
            with httpx2.Client(base_url=base) as api:
                token = api.post(
                    "/v1/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": DEVELOPER,
                        "client_secret": dev_password,
                        "otp": _fresh_code(dev["secreto"]),
                    },
                ).json()["access_token"]
                read = api.get(
                    "/v1/avisos",
                    params={"rfc_patron": employer.rfc, "nrp": granted, "limite": 7},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert read.status_code == 200 and len(read.json()["avisos"]) == 7, read.text
            # A read's audit row trails its answer by the audit writer's flush (~100 ms): the page shows what is
            # written, so wait for the row before opening it.
            deadline = time.monotonic() + 10
            query = "SELECT count(*) AS n FROM evento_auditoria WHERE accion = 'avisos.consulta' AND actor = $1"
            while not _sql(url, query, DEVELOPER)[0]["n"] and time.monotonic() < deadline:
                time.sleep(0.1)
            page.get_by_role("link", name="Auditoría").click()
            audit = page.get_by_role("table").filter(has_text="Consulta de avisos")
            reading = audit.get_by_role("row").filter(has_text=DEVELOPER).filter(has_text="Consulta de avisos")
            expect(reading).to_contain_text("7")
            expect(reading).to_contain_text("Completa")
            expect(page.get_by_role("img", name="Consultas por día").or_(page.locator(".grafica svg"))).to_be_visible()
            _shot(page, "auditoria")

            # ---------------------------------------------------------------- revoke, with confirmation
            page.get_by_role("link", name="Mis NRP y relaciones").click()
            page.get_by_role("button", name="Revocar").click()
            page.get_by_role("button", name="Sí, revocar").click()
            expect(page.get_by_text("revocada. Acuse de revocación")).to_be_visible()
            expect(page.get_by_role("row").filter(has_text=DEVELOPER)).to_contain_text("Revocada")
            _shot(page, "revocada")
            with httpx2.Client(base_url=base) as api:
                refused = api.get(
                    "/v1/avisos", params={"rfc_patron": employer.rfc}, headers={"Authorization": f"Bearer {token}"}
                )
                assert refused.status_code == 403

            # ---------------------------------------------------------------- phone width, keyboard only
            page.set_viewport_size({"width": 390, "height": 844})
            _shot(page, "movil")
            page.get_by_role("button", name="Cerrar sesión").click()
            expect(page.get_by_role("button", name="Entrar")).to_be_visible()
            page.get_by_label("RFC", exact=True).focus()
            page.keyboard.type(employer.rfc)
            page.keyboard.press("Tab")
            page.keyboard.type(password)
            page.keyboard.press("Tab")
            page.keyboard.type(_fresh_code(mine["secreto"]))
            page.keyboard.press("Enter")
            expect(page.get_by_role("button", name="Cerrar sesión")).to_be_visible()
            _shot(page, "entrar-movil")
            page.set_viewport_size({"width": 1280, "height": 900})

            # ---------------------------------------------------------------- renewal ends the session at once
            page.get_by_role("link", name="Contraseña con e.firma").click()
            page.get_by_label("Certificado (.cer)").set_input_files(demo / f"{employer.rfc}.cer")
            page.get_by_label("Llave privada (.key)").set_input_files(key)
            page.get_by_label("Contraseña de la llave privada").fill(DEMO_KEY_PASSWORD.decode())
            page.get_by_role("button", name="Renovar contraseña").click()
            expect(page.get_by_role("heading", name="Listo: registre su código OTP")).to_be_visible(timeout=20_000)
            # The browser still holds the cookie; the server no longer honours it (page.request sends the page's
            # cookies without a console entry for the expected 401).
            after = page.request.get(f"{base}/portal/api/relaciones")
            after_renewal = f"{after.status} {after.json()['code']}"
            assert after_renewal == "401 sesion_requerida"
            expect(page.get_by_role("navigation", name="Secciones").get_by_role("link", name="Entrar")).to_be_visible()
            assert _password_for(data / "outbox", employer.rfc) != password, "a new password by e-mail"

            # ---------------------------------------------------------------- SAT's own test files, decrypted here
            recorded.clear()
            page.get_by_role("link", name="Contraseña con e.firma").click()
            _efirma_step(
                page, base, sat / f"{SAT_RFC}_fiel.cer", sat / f"{SAT_RFC}_fiel.key", SAT_RFC, "sat@example.com"
            )
            for request in recorded:
                body = request.post_data_buffer or b""
                assert DEMO_KEY_PASSWORD not in body and (sat / f"{SAT_RFC}_fiel.key").read_bytes()[20:80] not in body
        except Exception:
            page.screenshot(path=ARTIFACTS / "portal-fallo.png", full_page=True)
            raise
        finally:
            browser.close()

    REQUESTS_NOTE.write_text(
        "Solicitudes que hizo la página durante el paso de la e.firma (ninguna lleva la llave ni su contraseña):\n"
        + "\n".join(lines)
        + "\n\nTras renovar la contraseña, la cookie de la sesión anterior: GET /portal/api/relaciones -> "
        f"{after_renewal}\n\nTiempos medidos en Chromium (segundos):\n"
        + "\n".join(f"{seconds:6.2f}  {what}" for what, seconds in TIMINGS.items())
        + "\n",
        encoding="utf-8",
    )
    print(REQUESTS_NOTE.read_text(encoding="utf-8"))
    assert outside == [], "the portal asked another host for something"
    assert errors == [], "the page logged errors"
