"""e.firma challenges, passwords, tokens, JWKS and acuses: HTTP in, service calls, HTTP out."""

import base64
import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, EmailStr, Field
from pydantic.json_schema import JsonDict
from sqlalchemy.ext.asyncio import AsyncSession

from app import credenciales
from app.deps import KeysDep, OcspDep, PasswordGateDep, RateLimiterDep, SessionDep, SettingsDep, client_address, utc_now
from app.identifiers import RFC, has_control_characters
from app.problems import ProblemCode, problem_responses
from app.security import tokens
from app.security.rate_limit import RateLimiter, efirma_key
from app.settings import Settings

router = APIRouter()
EJEMPLO_RFC = "TRN920807B50"
EJEMPLO_PRUEBA: JsonDict = {
    "reto_id": "0b6f3a9e-2c41-4d8e-9a57-3e1f8c2d6b40",
    # The start of a .cer in base64; a real one is about 2,000 characters.
    "certificado": "MIIGGDCCBACgAwIBAgIUMzAwMDEwMDAwMDA1MDAwMDM0MTYwDQYJKoZIhvcNAQELBQAw",
    "firma": "kQ2xV0m8cB7Jt1vY9wZ3pL6fH4sD2aE5rT8uI0oP1qW3eR6tY9uI2oP5aS8dF1gH4jK7lZ0xC3vB6nM9qW2eR5tY8uI1oP4aS7dF0g==",
}


def _client(request: Request) -> str:
    # Behind a trusted proxy (SIA_TRUSTED_PROXIES), ProxyHeadersMiddleware has already put the client here.
    return request.client.host if request.client else "desconocido"


async def _limit_efirma(limiter: RateLimiter, settings: Settings, request: Request, rfc: str | None) -> None:
    """Every e.firma route (a challenge, a proof) shares one quota per IP and RFC."""
    await limiter.hit(settings.rate_limit_efirma, efirma_key(client_address(request), rfc))


async def _limit_proof(
    limiter: RateLimiter, settings: Settings, request: Request, session: AsyncSession, reto_id: uuid.UUID
) -> None:
    """A proof counts against the quota of the RFC its challenge was asked for (unknown challenges share one)."""
    await _limit_efirma(limiter, settings, request, await credenciales.rfc_of_reto(session, reto_id))


# ------------------------------------------------------------------ retos


class SolicitudReto(BaseModel):
    rfc: RFC

    model_config = ConfigDict(json_schema_extra={"examples": [{"rfc": EJEMPLO_RFC}]})


class RetoEmitido(BaseModel):
    reto_id: uuid.UUID
    reto: str = Field(description="32 bytes aleatorios en base64: firme los bytes decodificados.")
    expira_en: dt.datetime

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "reto_id": EJEMPLO_PRUEBA["reto_id"],
                    "reto": "Vq3kR0dL9s2mXo7TzB1cY8wJ5nE4aH6uP0fG3iK2lQ8=",
                    "expira_en": "2026-11-24T16:10:00.512004Z",
                }
            ]
        }
    )


@router.post(
    "/v1/efirma/retos",
    tags=["e.firma"],
    status_code=201,
    summary="Pedir un reto para firmar con la e.firma",
    operation_id="crearReto",
    response_description="El reto, de un solo uso y vigencia de minutos.",
    responses=problem_responses(
        "cuerpo_ilegible", "solicitud_demasiado_grande", "solicitud_invalida", "limite_de_tasa"
    ),
)
async def crear_reto(
    body: SolicitudReto, session: SessionDep, settings: SettingsDep, limiter: RateLimiterDep, request: Request
) -> RetoEmitido:
    """Primer paso para obtener, renovar o cancelar una contraseña: firme el reto con la llave privada de la
    e.firma del RFC (RSA PKCS#1 v1.5 con SHA-256 sobre los bytes decodificados), p. ej. con `sia efirma firmar`."""
    await _limit_efirma(limiter, settings, request, body.rfc)
    reto = await credenciales.create_reto(session, body.rfc, settings, utc_now())
    return RetoEmitido(reto_id=reto.id, reto=base64.b64encode(reto.reto).decode(), expira_en=reto.expira_en)


# ------------------------------------------------------------------ contraseñas

# What proving an e.firma can answer (credenciales._prove), before each route's own codes.
EFIRMA_PROBLEMS: tuple[ProblemCode, ...] = (
    "cuerpo_ilegible",
    "solicitud_demasiado_grande",
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
    "certificado_revocado",
    "revocacion_no_verificable",
    "limite_de_tasa",
)


class PruebaEfirmaPublic(BaseModel):
    reto_id: uuid.UUID
    certificado: str = Field(description="El archivo .cer de la e.firma, en base64.", max_length=20_000)
    firma: str = Field(description="Firma del reto en base64 (RSA PKCS#1 v1.5, SHA-256).", max_length=4_000)

    model_config = ConfigDict(json_schema_extra={"examples": [EJEMPLO_PRUEBA]})

    def prueba(self) -> credenciales.PruebaEfirma:
        return credenciales.PruebaEfirma(self.reto_id, self.certificado, self.firma)


class SolicitudContrasena(PruebaEfirmaPublic):
    correo: EmailStr = Field(description="A donde se envía la contraseña.")

    model_config = ConfigDict(json_schema_extra={"examples": [{**EJEMPLO_PRUEBA, "correo": "nomina@trn.com.mx"}]})


class SolicitudRenovacion(PruebaEfirmaPublic):
    correo: EmailStr | None = Field(default=None, description="Nuevo correo; si falta, el de la contraseña anterior.")

    model_config = ConfigDict(json_schema_extra={"examples": [{**EJEMPLO_PRUEBA, "correo": "sistemas@trn.com.mx"}]})


class SecretoOtp(BaseModel):
    secreto: str = Field(description="Secreto TOTP (RFC 6238, base32). Se muestra solo esta vez.")
    uri: str = Field(description="El mismo secreto como URI otpauth:// para una app autenticadora.")


class ContrasenaEmitida(BaseModel):
    rfc: str
    correo_enmascarado: str
    otp: SecretoOtp
    folio_acuse: str

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "rfc": EJEMPLO_RFC,
                    "correo_enmascarado": "n*****@trn.com.mx",
                    "otp": {
                        "secreto": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
                        "uri": "otpauth://totp/SIA%20Infonavit:TRN920807B50?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
                        "&issuer=SIA%20Infonavit",
                    },
                    "folio_acuse": "ACU-20261124-3F9A0C21B7",
                }
            ]
        }
    )


class ContrasenaCancelada(BaseModel):
    rfc: str
    estado: str
    folio_acuse: str

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"rfc": EJEMPLO_RFC, "estado": "cancelada", "folio_acuse": "ACU-20261124-9B41D07E2C"}]
        }
    )


def _emitida(result: credenciales.CredencialEmitida) -> ContrasenaEmitida:
    return ContrasenaEmitida(
        rfc=result.rfc,
        correo_enmascarado=credenciales.mask_email(result.correo),
        otp=SecretoOtp(secreto=result.secreto_totp, uri=result.uri_totp),
        folio_acuse=result.folio_acuse,
    )


@router.post(
    "/v1/contrasenas",
    tags=["Credenciales"],
    status_code=201,
    summary="Obtener una contraseña con la e.firma",
    operation_id="emitirContrasena",
    response_description="Contraseña enviada por correo; el secreto TOTP va en esta respuesta, una sola vez.",
    responses=problem_responses(*EFIRMA_PROBLEMS, "contrasena_activa", "correo_no_enviado"),
)
async def emitir_contrasena(
    body: SolicitudContrasena,
    session: SessionDep,
    settings: SettingsDep,
    keys: KeysDep,
    limiter: RateLimiterDep,
    request: Request,
    ocsp: OcspDep,
) -> ContrasenaEmitida:
    """Valida la e.firma (cadena del SAT, vigencia, que sea FIEL y no CSD, el RFC del reto y la firma),
    envía la contraseña al correo y devuelve el secreto TOTP. Si el RFC ya tiene contraseña: 409."""
    await _limit_proof(limiter, settings, request, session, body.reto_id)
    result = await credenciales.issue_password(
        session, keys, settings, body.prueba(), str(body.correo), utc_now(), revocation=ocsp
    )
    return _emitida(result)


@router.post(
    "/v1/contrasenas/renovacion",
    tags=["Credenciales"],
    status_code=201,
    summary="Renovar la contraseña",
    operation_id="renovarContrasena",
    response_description="Nueva contraseña por correo y nuevo secreto TOTP; los anteriores dejan de valer.",
    responses=problem_responses(*EFIRMA_PROBLEMS, "sin_contrasena_activa", "contrasena_activa", "correo_no_enviado"),
)
async def renovar_contrasena(
    body: SolicitudRenovacion,
    session: SessionDep,
    settings: SettingsDep,
    keys: KeysDep,
    limiter: RateLimiterDep,
    request: Request,
    ocsp: OcspDep,
) -> ContrasenaEmitida:
    """Con una firma nueva de la e.firma. La contraseña anterior y todos sus tokens dejan de valer al instante."""
    await _limit_proof(limiter, settings, request, session, body.reto_id)
    correo = str(body.correo) if body.correo else None
    return _emitida(
        await credenciales.renew_password(session, keys, settings, body.prueba(), correo, utc_now(), revocation=ocsp)
    )


@router.post(
    "/v1/contrasenas/cancelacion",
    tags=["Credenciales"],
    summary="Cancelar la contraseña",
    operation_id="cancelarContrasena",
    response_description="Contraseña cancelada; sus tokens dejan de valer al instante.",
    responses=problem_responses(*EFIRMA_PROBLEMS, "sin_contrasena_activa"),
)
async def cancelar_contrasena(
    body: PruebaEfirmaPublic,
    session: SessionDep,
    settings: SettingsDep,
    keys: KeysDep,
    limiter: RateLimiterDep,
    request: Request,
    ocsp: OcspDep,
) -> ContrasenaCancelada:
    """Con una firma nueva de la e.firma."""
    await _limit_proof(limiter, settings, request, session, body.reto_id)
    rfc, folio = await credenciales.cancel_password(session, keys, settings, body.prueba(), utc_now(), revocation=ocsp)
    return ContrasenaCancelada(rfc=rfc, estado="cancelada", folio_acuse=folio)


# ------------------------------------------------------------------ token


class TokenEmitido(BaseModel):
    access_token: str
    token_type: str
    expires_in: int = Field(description="Segundos de vigencia.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJFUzI1NiIsImtpZCI6Ii1mN0NIWnJHeTEwb2ZKaHciLCJ0eXAiOiJKV1QifQ"
                    ".eyJpc3MiOiJodHRwczovL3NpYS5pbmZvbmF2aXQub3JnLm14Iiwic3ViIjoiVFJOOTIwODA3QjUwIn0"
                    ".q0Zp3Wb7Tf1m2c9QvS8dK4yH6xN5jR0aL3uE7gB1oC2iV9tP4wM8nY6sD5fA0kJ3hG7lZ1xQ2eR4tU6iO8pW0",
                    "token_type": "Bearer",
                    "expires_in": 300,
                }
            ]
        }
    )


# Every field is optional so that a missing one gets RFC 6749's invalid_request, not a 422. (The docstring is
# the schema's description in the contract: Spanish, for the payroll developer.)
class SolicitudToken(BaseModel):
    """Formulario de RFC 6749 §4.4 (client credentials) más el código TOTP."""

    grant_type: str | None = Field(default=None, description="Siempre `client_credentials`.")
    client_id: str | None = Field(default=None, description="El RFC.")
    client_secret: str | None = Field(default=None, description="La contraseña recibida por correo.")
    otp: str | None = Field(default=None, description="Código TOTP vigente (sirve una sola vez).")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "grant_type": "client_credentials",
                    "client_id": EJEMPLO_RFC,
                    "client_secret": "h7Kq-2mZp-Xw9R-tL4c",
                    "otp": "492039",
                }
            ]
        }
    )


class ErrorOAuth(BaseModel):
    error: str = Field(description="Código RFC 6749 §5.2.")
    error_description: str


NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
INCOMPLETO = "Faltan client_id, client_secret u otp."
CONTROL = "Los campos no pueden llevar caracteres de control."
DEMASIADO_GRANDE = "El cuerpo de la solicitud excede 65536 bytes."
BLOQUEADO = "Demasiados intentos fallidos; reintente en 840 s."
OCUPADO = "Hay demasiadas verificaciones de contraseña en curso; reintente en 1 s."


def _oauth_doc(description: str, error: str, error_description: str) -> dict[str, Any]:
    example = {"error": error, "error_description": error_description}
    return {"model": ErrorOAuth, "description": description, "content": {"application/json": {"example": example}}}


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
        400: _oauth_doc("`invalid_request` o `unsupported_grant_type` (RFC 6749 §5.2).", "invalid_request", INCOMPLETO),
        401: _oauth_doc(
            "`invalid_client`: RFC, contraseña o código OTP incorrectos.",
            "invalid_client",
            credenciales.WRONG_CREDENTIALS,
        ),
        413: _oauth_doc(
            "`invalid_request`: el cuerpo excede el límite de la API.", "invalid_request", DEMASIADO_GRANDE
        ),
        429: _oauth_doc(
            "Demasiados intentos fallidos: desde su dirección (contraseñas equivocadas) o con el RFC (códigos OTP "
            "equivocados con la contraseña correcta, que lo bloquean un rato).",
            "invalid_client",
            BLOQUEADO,
        ),
        503: _oauth_doc(
            "`temporarily_unavailable`: hay demasiadas verificaciones de contraseña en curso; "
            "reintente según `Retry-After`.",
            "temporarily_unavailable",
            OCUPADO,
        ),
    },
)
async def emitir_token(
    session: SessionDep,
    settings: SettingsDep,
    keys: KeysDep,
    limiter: RateLimiterDep,
    gate: PasswordGateDep,
    request: Request,
    form: Annotated[SolicitudToken, Form()],
) -> Any:
    """Formulario `application/x-www-form-urlencoded`. Los errores siguen RFC 6749 §5.2 (no problem+json),
    porque es lo que esperan las bibliotecas de OAuth. Un código TOTP sirve una sola vez."""
    if form.grant_type is not None and has_control_characters(form.grant_type):
        return _oauth_error(credenciales.TokenError("invalid_request", CONTROL))
    if form.grant_type != "client_credentials":
        code: credenciales.OAuthErrorCode = "invalid_request" if form.grant_type is None else "unsupported_grant_type"
        return _oauth_error(credenciales.TokenError(code, "grant_type debe ser client_credentials."))
    client_id, client_secret, otp = form.client_id, form.client_secret, form.otp
    if not client_id or not client_secret or not otp or len(client_id) > 13 or len(client_secret) > 200:
        return _oauth_error(credenciales.TokenError("invalid_request", INCOMPLETO))
    if any(has_control_characters(value) for value in (client_id, client_secret, otp)):
        return _oauth_error(credenciales.TokenError("invalid_request", CONTROL))
    try:
        token, expires_in = await credenciales.exchange_token(
            session,
            keys,
            settings,
            limiter,
            gate,
            rfc=client_id,
            password=client_secret,
            otp=otp,
            source=client_address(request),
            now=utc_now(),
        )
    except credenciales.TokenError as e:
        # Returned, not raised: the failure counter must be committed with the answer.
        return _oauth_error(e)
    return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}, headers=NO_STORE)


# ------------------------------------------------------------------ jwks and acuses


class Jwks(BaseModel):
    keys: list[dict[str, str]]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "keys": [
                        {
                            "kty": "EC",
                            "crv": "P-256",
                            "x": "Rewxzxm3m-uElRUGTfcVVBC2mnT8oBxlXf8byKN7dWI",
                            "y": "QXlSb3qW1imbE5zdUlm88Sps0Kz6CZzXaCyYoKRkp8Q",
                            "kid": "-f7CHZrGy10ofJhwqS3mYc1uVvXb9aT2nE4kLd8pR0s",
                            "use": "sig",
                            "alg": "ES256",
                        }
                    ]
                }
            ]
        }
    )


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
    document = tokens.jwks(keys.tokens, keys.sellos, now=utc_now())
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=300"})
