"""e.firma challenges, passwords, tokens, JWKS and acuses: HTTP in, service calls, HTTP out."""

import base64
import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, EmailStr, Field

from app import credenciales
from app.db import Session
from app.deps import KeysDep, RateLimiterDep, SettingsDep
from app.identifiers import RFC
from app.problems import Problem, problem_responses
from app.security import tokens

router = APIRouter()
EJEMPLO_RFC = "EKU9003173C9"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _client(request: Request) -> str:
    return request.client.host if request.client else "desconocido"


# ------------------------------------------------------------------ retos


class SolicitudReto(BaseModel):
    rfc: RFC = Field(examples=[EJEMPLO_RFC])


class RetoEmitido(BaseModel):
    reto_id: uuid.UUID
    reto: str = Field(description="32 bytes aleatorios en base64: firme los bytes decodificados.")
    expira_en: dt.datetime


@router.post(
    "/v1/efirma/retos",
    tags=["e.firma"],
    status_code=201,
    summary="Pedir un reto para firmar con la e.firma",
    operation_id="crearReto",
    response_description="El reto, de un solo uso y vigencia de minutos.",
    responses=problem_responses("cuerpo_ilegible", "solicitud_invalida", "limite_de_tasa"),
)
async def crear_reto(
    body: SolicitudReto, session: Session, settings: SettingsDep, limiter: RateLimiterDep, request: Request
) -> RetoEmitido:
    """Primer paso para obtener, renovar o cancelar una contraseña: firme el reto con la llave privada de la
    e.firma del RFC (RSA PKCS#1 v1.5 con SHA-256 sobre los bytes decodificados), p. ej. con `sia efirma firmar`."""
    limiter.hit(settings.rate_limit_efirma, f"efirma:{_client(request)}")
    reto = await credenciales.create_reto(session, body.rfc, settings, _now())
    return RetoEmitido(reto_id=reto.id, reto=base64.b64encode(reto.reto).decode(), expira_en=reto.expira_en)


# ------------------------------------------------------------------ contraseñas

# What proving an e.firma can answer (credenciales._prove), before each route's own codes.
EFIRMA_PROBLEMS = (
    "cuerpo_ilegible",
    "reto_desconocido",
    "reto_usado",
    "reto_vencido",
    "solicitud_invalida",
    "certificado_ilegible",
    "certificado_no_es_efirma",
    "certificado_vencido",
    "certificado_aun_no_vigente",
    "cadena_no_confiable",
    "rfc_no_coincide",
    "firma_invalida",
    "limite_de_tasa",
)


class PruebaEfirma(BaseModel):
    reto_id: uuid.UUID
    certificado: str = Field(description="El archivo .cer de la e.firma, en base64.", max_length=20_000)
    firma: str = Field(description="Firma del reto en base64 (RSA PKCS#1 v1.5, SHA-256).", max_length=4_000)

    def prueba(self) -> credenciales.PruebaEfirma:
        return credenciales.PruebaEfirma(self.reto_id, self.certificado, self.firma)


class SolicitudContrasena(PruebaEfirma):
    correo: EmailStr = Field(description="A donde se envía la contraseña.", examples=["nomina@empresa.mx"])


class SolicitudRenovacion(PruebaEfirma):
    correo: EmailStr | None = Field(default=None, description="Nuevo correo; si falta, el de la contraseña anterior.")


class SecretoOtp(BaseModel):
    secreto: str = Field(description="Secreto TOTP (RFC 6238, base32). Se muestra solo esta vez.")
    uri: str = Field(description="El mismo secreto como URI otpauth:// para una app autenticadora.")


class ContrasenaEmitida(BaseModel):
    rfc: str = Field(examples=[EJEMPLO_RFC])
    correo_enmascarado: str = Field(examples=["n*****@empresa.mx"])
    otp: SecretoOtp
    folio_acuse: str


class ContrasenaCancelada(BaseModel):
    rfc: str
    estado: str = Field(examples=["cancelada"])
    folio_acuse: str


def _emitida(result: credenciales.CredencialEmitida) -> ContrasenaEmitida:
    return ContrasenaEmitida(
        rfc=result.rfc,
        correo_enmascarado=credenciales.mask_email(result.correo),
        otp=SecretoOtp(secreto=result.secreto_totp, uri=result.uri_totp),
        folio_acuse=result.folio_acuse,
    )


@router.post(
    "/v1/contrasenas",
    tags=["Contraseñas"],
    status_code=201,
    summary="Obtener una contraseña con la e.firma",
    operation_id="emitirContrasena",
    response_description="Contraseña enviada por correo; el secreto TOTP va en esta respuesta, una sola vez.",
    responses=problem_responses(*EFIRMA_PROBLEMS, "contrasena_activa", "correo_no_enviado"),
)
async def emitir_contrasena(
    body: SolicitudContrasena,
    session: Session,
    settings: SettingsDep,
    keys: KeysDep,
    limiter: RateLimiterDep,
    request: Request,
) -> ContrasenaEmitida:
    """Valida la e.firma (cadena del SAT, vigencia, que sea FIEL y no CSD, el RFC del reto y la firma),
    envía la contraseña al correo y devuelve el secreto TOTP. Si el RFC ya tiene contraseña: 409."""
    limiter.hit(settings.rate_limit_efirma, f"efirma:{_client(request)}")
    result = await credenciales.issue_password(session, keys, settings, body.prueba(), str(body.correo), _now())
    return _emitida(result)


@router.post(
    "/v1/contrasenas/renovacion",
    tags=["Contraseñas"],
    status_code=201,
    summary="Renovar la contraseña",
    operation_id="renovarContrasena",
    response_description="Nueva contraseña por correo y nuevo secreto TOTP; los anteriores dejan de valer.",
    responses=problem_responses(*EFIRMA_PROBLEMS, "sin_contrasena_activa", "contrasena_activa", "correo_no_enviado"),
)
async def renovar_contrasena(
    body: SolicitudRenovacion,
    session: Session,
    settings: SettingsDep,
    keys: KeysDep,
    limiter: RateLimiterDep,
    request: Request,
) -> ContrasenaEmitida:
    """Con una firma nueva de la e.firma. La contraseña anterior y todos sus tokens dejan de valer al instante."""
    limiter.hit(settings.rate_limit_efirma, f"efirma:{_client(request)}")
    correo = str(body.correo) if body.correo else None
    return _emitida(await credenciales.renew_password(session, keys, settings, body.prueba(), correo, _now()))


@router.post(
    "/v1/contrasenas/cancelacion",
    tags=["Contraseñas"],
    summary="Cancelar la contraseña",
    operation_id="cancelarContrasena",
    response_description="Contraseña cancelada; sus tokens dejan de valer al instante.",
    responses=problem_responses(*EFIRMA_PROBLEMS, "sin_contrasena_activa"),
)
async def cancelar_contrasena(
    body: PruebaEfirma,
    session: Session,
    settings: SettingsDep,
    keys: KeysDep,
    limiter: RateLimiterDep,
    request: Request,
) -> ContrasenaCancelada:
    """Con una firma nueva de la e.firma."""
    limiter.hit(settings.rate_limit_efirma, f"efirma:{_client(request)}")
    rfc, folio = await credenciales.cancel_password(session, keys, settings, body.prueba(), _now())
    return ContrasenaCancelada(rfc=rfc, estado="cancelada", folio_acuse=folio)


# ------------------------------------------------------------------ token


class TokenEmitido(BaseModel):
    access_token: str
    token_type: str = Field(examples=["Bearer"])
    expires_in: int = Field(examples=[300], description="Segundos de vigencia.")


class ErrorOAuth(BaseModel):
    error: str = Field(examples=["invalid_client"], description="Código RFC 6749 §5.2.")
    error_description: str = Field(examples=["RFC, contraseña o código OTP incorrectos."])


NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _oauth_error(error: credenciales.TokenError) -> JSONResponse:
    headers = dict(NO_STORE)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="sia"'
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    body = {"error": error.error, "error_description": error.description}
    return JSONResponse(body, status_code=error.status, headers=headers)


@router.post(
    "/v1/token",
    tags=["Tokens"],
    summary="Obtener un token de acceso",
    operation_id="emitirToken",
    response_model=TokenEmitido,
    response_description="Token JWT (ES256) de pocos minutos; respuesta RFC 6749 §5.1.",
    responses={
        400: {"model": ErrorOAuth, "description": "`invalid_request` o `unsupported_grant_type` (RFC 6749 §5.2)."},
        401: {"model": ErrorOAuth, "description": "`invalid_client`: RFC, contraseña o código OTP incorrectos."},
        429: {"model": ErrorOAuth, "description": "Demasiados intentos fallidos: el RFC queda bloqueado un rato."},
    },
)
async def emitir_token(
    session: Session,
    settings: SettingsDep,
    keys: KeysDep,
    limiter: RateLimiterDep,
    request: Request,
    grant_type: Annotated[str | None, Form(examples=["client_credentials"])] = None,
    client_id: Annotated[str | None, Form(description="El RFC.", examples=[EJEMPLO_RFC])] = None,
    client_secret: Annotated[str | None, Form(description="La contraseña recibida por correo.")] = None,
    otp: Annotated[str | None, Form(description="Código TOTP vigente.", examples=["123456"])] = None,
) -> Any:
    """Formulario `application/x-www-form-urlencoded`. Los errores siguen RFC 6749 §5.2 (no problem+json),
    porque es lo que esperan las bibliotecas de OAuth. Un código TOTP sirve una sola vez."""
    if grant_type != "client_credentials":
        code = "invalid_request" if grant_type is None else "unsupported_grant_type"
        return _oauth_error(credenciales.TokenError(code, "grant_type debe ser client_credentials."))
    if not client_id or not client_secret or not otp or len(client_id) > 13 or len(client_secret) > 200:
        return _oauth_error(credenciales.TokenError("invalid_request", "Faltan client_id, client_secret u otp."))
    try:
        # In front of Argon2: every verify costs 19 MiB and ~25 ms of a core.
        limiter.hit(settings.rate_limit_token, f"token:{client_id}:{_client(request)}")
    except Problem as e:
        retry = int(e.headers["Retry-After"])
        return _oauth_error(credenciales.TokenError("invalid_client", e.detail, status=429, retry_after=retry))
    try:
        token, expires_in = await credenciales.exchange_token(
            session, keys, settings, rfc=client_id, password=client_secret, otp=otp, now=_now()
        )
    except credenciales.TokenError as e:
        # Returned, not raised: the failure counter must be committed with the answer.
        return _oauth_error(e)
    return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}, headers=NO_STORE)


# ------------------------------------------------------------------ jwks and acuses


class Jwks(BaseModel):
    keys: list[dict[str, str]]


@router.get(
    "/.well-known/jwks.json",
    tags=["Tokens"],
    summary="Llaves públicas de firma",
    operation_id="jwks",
    response_model=Jwks,
    response_description="JWKS con las llaves de tokens vigentes y las de sellos de acuses.",
)
async def jwks(keys: KeysDep) -> JSONResponse:
    """Para verificar tokens y los sellos de los acuses. Las llaves de tokens reemplazadas se conservan hasta que
    vencen sus tokens; las de sellos, siempre."""
    document = tokens.jwks(keys.tokens, keys.sellos, now=_now())
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=300"})
