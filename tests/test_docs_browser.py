"""/docs in a real browser: headless Chromium (Debian's `chromium`, driven by Playwright) renders Swagger UI from
this service alone, with every request to another host blocked, and "Try it out" on the catalog operation shows
the service's answer; /redoc renders from this service alone too. The screenshot is artifacts/docs-swagger.png."""

import re
from pathlib import Path

import httpx2
import pytest
from playwright.sync_api import ConsoleMessage, Error, expect, sync_playwright

from tests import browser as browser_tools
from tests.live import live_server

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "artifacts" / "docs-swagger.png"
CATALOG_PATH = "/v1/catalogos/{nombre}"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


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
        browser = browser_tools.launch(playwright, chromium)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
        context.route("**/*", browser_tools.outside_loopback_blocked(outside))
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
            # ReDoc lays the whole document out in the browser first: more than 5 s on a busy 2-core machine.
            operation = page.locator("h2").filter(has_text=re.compile(r"^Descargar avisos\s*$"))
            expect(operation).to_be_visible(timeout=20_000)
            page.get_by_text("API docs by Redocly").scroll_into_view_if_needed()
        except Exception:
            page.screenshot(path=SCREENSHOT, full_page=True)  # what the browser showed when it failed
            raise
        finally:
            browser.close()

    assert outside == [], "the docs asked another host for something; they must talk to this service only"
    assert errors == [], "the page logged errors"
