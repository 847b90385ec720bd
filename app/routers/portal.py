"""Portal SIA: its static page and the JSON routes behind it (backend for frontend), HTTP in and out.

The JSON routes under /portal/api are left out of openapi.yaml on purpose: they are the private backend of this
page, authenticated by a cookie that only a browser on this origin sends, and they change with the page. The
contract for machines is /v1 (bearer tokens), which every generated client is built from. They still answer only
registry problems, listed per route with problem_responses() for readers of this file."""

import datetime as dt
import uuid
from pathlib import Path as FilePath
from typing import Annotated

from asgi_correlation_id import correlation_id
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from app import acuses, auditoria, certificaciones, confianza, credenciales, portal
from app.deps import KeysDep, PasswordGateDep, RateLimiterDep, SessionDep, SettingsDep, client_address, utc_now
from app.identifiers import RFC
from app.problems import Problem, ProblemCode, problem_responses
from app.routers.acuses import acuse_of_party, pdf_response
from app.routers.certificaciones import Intento, open_within_quota
from app.routers.confianza import CREATE_PROBLEMS, FechaHora, PaginaAuditoria, Relacion, SolicitudRelacion
from app.routers.confianza import create as create_relacion
from app.routers.patrones import RegistroPatronal
from app.security import sessions
from app.security.tokens import Caller
from app.settings import Settings

STATIC = FilePath(__file__).resolve().parents[1] / "portal" / "static"
# No inline script or style, nothing from another host; the page may only talk to this origin. `data:` images
# are none of ours; frames and <base> are refused so nothing can be framed or re-rooted.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
NO_STORE = {"Cache-Control": "no-store"}
SESSION_PROBLEMS: tuple[ProblemCode, ...] = ("sesion_requerida",)
CHANGE_PROBLEMS: tuple[ProblemCode, ...] = ("sesion_requerida", "origen_no_permitido")

router = APIRouter(include_in_schema=False)


def _client(request: Request) -> str:
    return request.client.host if request.client else "desconocido"


class PortalStatic(StaticFiles):
    """The page's own files, with the same CSP as the page (a stray HTML file could not run inline code)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(PAGE_HEADERS)
        return response


@router.get("/portal")
@router.get("/portal/")
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


# ------------------------------------------------------------------ session plumbing


def _secure(settings: Settings, request: Request) -> bool:
    return request.url.scheme == "https" or settings.resolved_public_url.startswith("https://")


def _cookie_name(settings: Settings, request: Request) -> str:
    return sessions.COOKIE_SECURE if _secure(settings, request) else sessions.COOKIE_PLAIN


def _origin_of(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}".lower()


async def same_origin(request: Request, settings: SettingsDep) -> None:
    """Every state change from the portal carries this origin's Origin (browsers send it on every POST and DELETE
    fetch). SameSite=Strict already keeps the cookie off cross-site requests; this refuses the rest (a sibling
    subdomain, an old browser, a request with no Origin at all)."""
    origin = request.headers.get("origin")
    if settings.public_url:
        # Behind a proxy the Host header is the proxy's business; the public URL is the one origin people use.
        allowed = _origin_of(settings.public_url)
    else:
        # Development (no public URL): whatever host the browser reached this service at.
        allowed = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
    if origin is None or origin.lower() != allowed:
        raise Problem("origen_no_permitido", "El portal solo acepta cambios desde su propia página.")


async def _session_of(request: Request, session: AsyncSession, settings: Settings) -> Caller | None:
    raw = request.cookies.get(_cookie_name(settings, request))
    # A real cookie is 43 characters; anything far longer is not worth a hash and a query.
    return await portal.session_caller(session, raw, settings, utc_now()) if raw and len(raw) <= 100 else None


async def portal_caller(request: Request, session: SessionDep, settings: SettingsDep) -> Caller:
    caller = await _session_of(request, session, settings)
    if caller is None:
        raise Problem("sesion_requerida", "Inicie sesión en el portal con su RFC, contraseña y código OTP.")
    return caller


PortalCallerDep = Annotated[Caller, Depends(portal_caller)]
SameOrigin = Depends(same_origin)


# ------------------------------------------------------------------ sign-in, who, sign-out


class SolicitudSesion(BaseModel):
    rfc: str = Field(min_length=1, max_length=13)
    contrasena: str = Field(min_length=1, max_length=200)
    otp: str = Field(min_length=1, max_length=10)


class SesionActual(BaseModel):
    rfc: str
    nombre: str | None
    razon_social: str | None = Field(description="Si el RFC está en el padrón de patrones.")
    es_patron: bool
    certificado_hasta: dt.datetime | None = Field(description="Certificación vigente del desarrollador, si la hay.")
    inactividad_minutos: int


async def _actual(session: AsyncSession, caller: Caller, settings: Settings) -> SesionActual:
    persona = await portal.who(session, caller.credencial_id, caller.rfc, utc_now())
    return SesionActual(
        rfc=persona.rfc,
        nombre=persona.nombre,
        razon_social=persona.razon_social,
        es_patron=persona.razon_social is not None,
        certificado_hasta=persona.certificado_hasta,
        inactividad_minutos=settings.portal_idle_minutes,
    )


@router.post(
    "/portal/api/sesion",
    dependencies=[SameOrigin],
    responses=problem_responses(
        "cuerpo_ilegible",
        "solicitud_invalida",
        "origen_no_permitido",
        "credenciales_incorrectas",
        "rfc_bloqueado",
        "limite_de_tasa",
        "verificaciones_ocupadas",
    ),
)
async def entrar(
    body: SolicitudSesion,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    keys: KeysDep,
    limiter: RateLimiterDep,
    gate: PasswordGateDep,
) -> Response:
    rfc = body.rfc.strip().upper()
    try:
        # The very limits and buckets /v1/token uses: the portal is no way around them.
        opened = await portal.sign_in(
            session,
            keys,
            settings,
            limiter,
            gate,
            rfc=rfc,
            password=body.contrasena,
            otp=body.otp.strip(),
            source=client_address(request),
            now=utc_now(),
        )
    except credenciales.TokenError as e:
        # keep_writes: the failure counter (the lockout) is committed with the answer.
        headers = {"Retry-After": str(e.retry_after)} if e.retry_after else None
        raise Problem(e.problem, e.description, headers=headers, keep_writes=True) from None
    if previous := request.cookies.get(_cookie_name(settings, request)):
        await portal.sign_out(session, previous)  # a new sign-in replaces this browser's session, never adds one
    body_out = await _actual(session, Caller(opened.rfc, opened.credencial_id, ""), settings)
    response = JSONResponse(body_out.model_dump(mode="json"), headers=NO_STORE)
    secure = _secure(settings, request)
    response.set_cookie(
        _cookie_name(settings, request),
        opened.token,
        max_age=settings.portal_absolute_hours * 3600,
        path="/" if secure else "/portal",
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    return response


@router.get("/portal/api/sesion")
async def sesion_actual(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Who is signed in; 204 when nobody is (the page asks on every load, and "nobody yet" is no error)."""
    caller = await _session_of(request, session, settings)
    if caller is None:
        return Response(status_code=204, headers=NO_STORE)
    return JSONResponse((await _actual(session, caller, settings)).model_dump(mode="json"), headers=NO_STORE)


@router.delete(
    "/portal/api/sesion", status_code=204, dependencies=[SameOrigin], responses=problem_responses("origen_no_permitido")
)
async def salir(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Ends the session on the server (the row goes) and asks the browser to forget the cookie."""
    name = _cookie_name(settings, request)
    if raw := request.cookies.get(name):
        await portal.sign_out(session, raw)
    response = Response(status_code=204)
    secure = _secure(settings, request)
    response.delete_cookie(name, path="/" if secure else "/portal", secure=secure, httponly=True, samesite="strict")
    return response


# ------------------------------------------------------------------ the employer's pages


@router.get("/portal/api/patron", responses=problem_responses(*SESSION_PROBLEMS, "no_es_patron"))
async def mi_patron(caller: PortalCallerDep, session: SessionDep) -> RegistroPatronal:
    patron = await confianza.require_patron(session, caller.rfc)
    return RegistroPatronal(
        rfc=patron.rfc, razon_social=patron.razon_social, nrps=await confianza.nrps_of(session, caller.rfc)
    )


class Desarrollador(BaseModel):
    rfc: str
    nombre: str | None
    certificado: bool
    certificado_hasta: dt.datetime | None


@router.get(
    "/portal/api/desarrolladores/{rfc}",
    responses=problem_responses(
        *SESSION_PROBLEMS, "no_es_patron", "desarrollador_sin_contrasena", "solicitud_invalida"
    ),
)
async def desarrollador(rfc: Annotated[RFC, Path()], caller: PortalCallerDep, session: SessionDep) -> Desarrollador:
    """For an employer about to name a developer: whose RFC this is and whether it may read avisos."""
    await confianza.require_patron(session, caller.rfc)
    card = await portal.developer_card(session, rfc, utc_now())
    if card is None:
        raise Problem("desarrollador_sin_contrasena", f"{rfc} no tiene una contraseña activa del servicio.")
    return Desarrollador(
        rfc=card.rfc,
        nombre=card.nombre,
        certificado=card.certificado_hasta is not None,
        certificado_hasta=card.certificado_hasta,
    )


@router.get("/portal/api/relaciones", responses=problem_responses(*SESSION_PROBLEMS))
async def relaciones(
    caller: PortalCallerDep,
    session: SessionDep,
    rol: Annotated[str | None, Query(pattern="^(patron|desarrollador)$")] = None,
) -> list[Relacion]:
    now = utc_now()
    rows, _ = await confianza.list_relaciones(
        session, caller.rfc, rol=rol, estado=None, despues_de=None, limite=200, now=now
    )
    return [Relacion.of(r, now) for r in rows]


@router.post(
    "/portal/api/relaciones",
    status_code=201,
    dependencies=[SameOrigin],
    responses=problem_responses("cuerpo_ilegible", *CHANGE_PROBLEMS, *CREATE_PROBLEMS),
)
async def crear_relacion(
    body: SolicitudRelacion, caller: PortalCallerDep, session: SessionDep, keys: KeysDep
) -> Relacion:
    return await create_relacion(session, keys, caller.rfc, body)


@router.delete(
    "/portal/api/relaciones/{relacion_id}",
    dependencies=[SameOrigin],
    responses=problem_responses(*CHANGE_PROBLEMS, "solo_el_patron", "relacion_no_encontrada", "solicitud_invalida"),
)
async def revocar_relacion(
    relacion_id: Annotated[uuid.UUID, Path()], caller: PortalCallerDep, session: SessionDep, keys: KeysDep
) -> Relacion:
    now = utc_now()
    relacion = await confianza.revoke_relacion(session, keys, relacion_id, caller.rfc, now, correlation_id.get())
    return Relacion.of(relacion, now)


class AcuseResumen(BaseModel):
    folio: str
    tipo: str
    emitido_en: dt.datetime


@router.get("/portal/api/acuses", responses=problem_responses(*SESSION_PROBLEMS))
async def mis_acuses(caller: PortalCallerDep, session: SessionDep) -> list[AcuseResumen]:
    rows = await acuses.acuses_of(session, caller.rfc, limite=500)
    return [AcuseResumen(folio=a.folio, tipo=a.tipo, emitido_en=a.emitido_en) for a in rows]


@router.get(
    "/portal/api/acuses/{folio}.pdf",
    responses=problem_responses(*SESSION_PROBLEMS, "acuse_no_encontrado", "solicitud_invalida"),
)
async def acuse_pdf(
    folio: Annotated[str, Path(max_length=24, pattern=r"^[A-Z0-9-]+$")],
    caller: PortalCallerDep,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """A download (attachment), for a person to keep or print; the same PDF as GET /v1/acuses/{folio}."""
    return pdf_response(await acuse_of_party(session, folio, caller.rfc), settings, "attachment", **NO_STORE)


@router.get(
    "/portal/api/auditoria",
    responses=problem_responses(*SESSION_PROBLEMS, "no_es_patron", "solicitud_invalida", "rango_invalido"),
)
async def auditoria_patron(
    caller: PortalCallerDep,
    session: SessionDep,
    desde: Annotated[FechaHora | None, Query()] = None,
    hasta: Annotated[FechaHora | None, Query()] = None,
    desarrollador: Annotated[RFC | None, Query()] = None,
    antes_de: Annotated[int | None, Query(ge=1)] = None,
) -> PaginaAuditoria:
    await confianza.require_patron(session, caller.rfc)
    if desde and hasta and desde >= hasta:
        raise Problem("rango_invalido", "La fecha inicial debe ser anterior a la final.")
    rows, more = await auditoria.list_eventos(
        session, caller.rfc, desde=desde, hasta=hasta, desarrollador=desarrollador, antes_de=antes_de, limite=500
    )
    return PaginaAuditoria.of(rows, more)


# ------------------------------------------------------------------ the developer's pages


@router.get("/portal/api/certificaciones", responses=problem_responses(*SESSION_PROBLEMS))
async def intentos(caller: PortalCallerDep, session: SessionDep) -> list[Intento]:
    now = utc_now()
    return [Intento.of(c, now) for c in await certificaciones.intentos_of(session, caller.rfc)]


@router.post(
    "/portal/api/certificaciones",
    status_code=201,
    dependencies=[SameOrigin],
    responses=problem_responses(*CHANGE_PROBLEMS, "limite_de_tasa"),
)
async def abrir_intento(
    caller: PortalCallerDep, session: SessionDep, settings: SettingsDep, limiter: RateLimiterDep
) -> Intento:
    return await open_within_quota(session, settings, limiter, caller.rfc)


@router.delete(
    "/portal/api/certificaciones/{cert_id}",
    dependencies=[SameOrigin],
    responses=problem_responses(*CHANGE_PROBLEMS, "certificacion_no_encontrada", "solicitud_invalida"),
)
async def cancelar_intento(
    cert_id: Annotated[uuid.UUID, Path()], caller: PortalCallerDep, session: SessionDep
) -> Intento:
    now = utc_now()
    return Intento.of(await certificaciones.cancel_intento(session, cert_id, caller.rfc, now), now)
