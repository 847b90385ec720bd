"""/docs in a real browser: headless Chromium (Debian's `chromium`, driven by Playwright) renders Swagger UI from
this service alone, with every request to another host blocked, and "Try it out" on the catalog operation shows
the service's answer; /redoc renders from this service alone too. The screenshot is artifacts/docs-swagger.png."""

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
from playwright.sync_api import ConsoleMessage, Error, Route, expect, sync_playwright

from tests.live import live_server

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "artifacts" / "docs-swagger.png"
# A knob for other layouts, and for checking the "no Chromium" path: point it at a file that does not exist.
CHROMIUM = Path(os.environ.get("SIA_TEST_CHROMIUM", "/usr/bin/chromium"))
INSTALL = ["install", "-y", "--no-install-recommends", "chromium"]
# Headless as root, in a network that refuses outbound connections: no sandbox (it needs an unprivileged user),
# and none of Chromium's own calls home (component updates, sync, field trials...).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Debian's launcher adds this one when /dev/shm is small, but its check can fail ("[: unexpected operator").
    "--disable-dev-shm-usage",
]
CATALOG_PATH = "/v1/catalogos/{nombre}"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _install_chromium() -> str | None:
    """Debian's chromium when it is missing; why it could not be installed, or None.

    The test installs what it needs itself (not a Makefile step before pytest): this one place serves `make test`,
    `.ci/run` and a bare `pytest tests/test_docs_browser.py` alike, and a run that deselects the test installs
    nothing. apt-get's lists are refreshed only when the install fails without them (a fresh image has none)."""
    if CHROMIUM.exists():
        return None
    if shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing and this machine has no apt-get to install it"
    if os.geteuid() != 0:
        return f"{CHROMIUM} is missing and only root can install it: sudo apt-get {' '.join(INSTALL)}"

    def apt_get(*arguments: str) -> subprocess.CompletedProcess:
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        command = ["apt-get", *arguments]
        return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=900, check=False)

    done = apt_get(*INSTALL)
    if done.returncode != 0:
        apt_get("update")
        done = apt_get(*INSTALL)
    if CHROMIUM.exists():
        return None
    return f"`apt-get {' '.join(INSTALL)}` did not install {CHROMIUM}:\n{(done.stdout + done.stderr)[-2000:]}"


def _tell(request: pytest.FixtureRequest, text: str) -> None:
    """On the terminal even while pytest captures output."""
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print(f"\n{text}", flush=True)


@pytest.fixture(scope="module")
def chromium(request: pytest.FixtureRequest) -> Path:
    """The browser, installed if need be; when it cannot be, the test is skipped, loudly."""
    if not CHROMIUM.exists():
        _tell(request, f"{CHROMIUM} is missing: installing Debian's chromium with apt-get (may take a minute)")
    reason = _install_chromium()
    if reason:
        message = f"CHROMIUM UNAVAILABLE: the browser test of /docs DID NOT RUN. {reason}"
        _tell(request, f"{'!' * 100}\n{message}\n{'!' * 100}")
        pytest.skip(message)
    return CHROMIUM


def _outside_loopback_blocked(attempts: list[str]) -> Callable[[Route], None]:
    def handle(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            attempts.append(url)
            route.abort("blockedbyclient")

    return handle


@pytest.mark.slow
def test_swagger_ui_renders_offline_and_tries_the_catalog(chromium, new_database, tmp_path):
    outside: list[str] = []
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text} ({message.location.get('url')})")

    def page_error(error: Error) -> None:
        errors.append(f"page error: {error}")

    with live_server(new_database(), tmp_path / "srv") as base, sync_playwright() as playwright:
        spec = httpx2.get(f"{base}/openapi.json").json()
        operations = sum(method in METHODS for item in spec["paths"].values() for method in item)
        browser = playwright.chromium.launch(executable_path=str(chromium), args=FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
        context.route("**/*", _outside_loopback_blocked(outside))
        page = context.new_page()
        page.on("console", console)
        page.on("pageerror", page_error)
        SCREENSHOT.parent.mkdir(exist_ok=True)
        try:
            page.goto(f"{base}/docs")
            assert outside == [], "/docs needs another host (a CDN?); every asset must come from this service"
            expect(page.locator(".opblock")).to_have_count(operations)

            operation = page.locator(f'.opblock-get:has(.opblock-summary-path[data-path="{CATALOG_PATH}"])')
            operation.locator(".opblock-summary").click()
            operation.get_by_role("button", name="Try it out").click()
            operation.locator('tr[data-param-name="nombre"] select').select_option("tipos-aviso")
            operation.get_by_role("button", name="Execute").click()

            expect(operation.locator(".request-url pre")).to_have_text(f"{base}/v1/catalogos/tipos-aviso")
            response = operation.locator(".live-responses-table tr.response")
            expect(response.locator(".response-col_status")).to_have_text("200")
            body = response.locator(".response-col_description .highlight-code pre")
            expect(body).to_contain_text(re.compile(r'"codigo": "10",\s*"descripcion": "Pronta culminación"'))
            # The body scrolls inside its box: bring the entry checked above into view, then shoot the operation.
            body.get_by_text("Pronta culminación").scroll_into_view_if_needed()
            operation.screenshot(path=SCREENSHOT)

            # ReDoc too: the operations render, and nothing (its footer logo included) comes from elsewhere.
            page.goto(f"{base}/redoc#tag/Avisos/operation/listarAvisos")
            expect(page.locator("h2").filter(has_text=re.compile(r"^Descargar avisos\s*$"))).to_be_visible()
            page.get_by_text("API docs by Redocly").scroll_into_view_if_needed()
        except Exception:
            page.screenshot(path=SCREENSHOT, full_page=True)  # what the browser showed when it failed
            raise
        finally:
            browser.close()

    assert outside == [], "the docs asked another host for something; they must talk to this service only"
    assert errors == [], "the page logged errors"
