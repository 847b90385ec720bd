"""/docs (Swagger UI) and /redoc from files installed with the project: no CDN, no web fonts, so the
docs work on a machine without internet."""

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = files("fastapi_offline") / "static"
ICON = "/static/favicon.png"
# ReDoc's footer shows Redocly's logo from their CDN: the browser would call it from every reader's network.
REDOC_CDN_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def install_docs(app: FastAPI) -> None:
    # The pages load the document from there: an app without one would serve empty docs.
    openapi_url = app.openapi_url
    if openapi_url is None:
        raise ValueError("install_docs necesita una app con openapi_url")
    redoc_js = (ASSETS / "redoc.standalone.js").read_text(encoding="utf-8").replace(REDOC_CDN_LOGO, ICON)
    app.mount("/static", StaticFiles(directory=str(ASSETS)), name="static")

    @app.get("/redoc.js", include_in_schema=False)
    async def redoc_script() -> Response:
        return Response(redoc_js, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} — documentación",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url="/static/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger-ui.css",
            swagger_favicon_url=ICON,
            # Swagger UI would otherwise ask validator.swagger.io about the spec, from the user's browser.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} — ReDoc",
            redoc_js_url="/redoc.js",
            redoc_favicon_url=ICON,
            with_google_fonts=False,
        )
