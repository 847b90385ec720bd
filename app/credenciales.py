"""Identity flows: challenges, passwords (issue, renew, cancel) proven with an e.firma, and the token
exchange (RFC + password + TOTP). Routers call these; these raise Problem for the client's mistakes."""

import asyncio
import base64
import binascii
import datetime as dt
import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Literal, cast

import anyio
from sqlalchemy import case, delete, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import acuses
from app.mail import MailError, send_mail
from app.models import BloqueoToken, Credencial, Reto
from app.models.identidad import token_credential_in_force
from app.problems import Problem, ProblemCode
from app.security import efirma, passwords, tokens, totp
from app.security.keys import Keys
from app.security.rate_limit import RateLimited, RateLimiter
from app.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruebaEfirma:
    reto_id: uuid.UUID
    certificado: str  # base64 of the .cer
    firma: str  # base64 of the signature over the decoded reto


@dataclass(frozen=True)
class CredencialEmitida:
    rfc: str
    correo: str
    secreto_totp: str
    uri_totp: str
    folio_acuse: str


# ------------------------------------------------------------------ challenges


async def create_reto(session: AsyncSession, rfc: str, settings: Settings, now: dt.datetime) -> Reto:
    reto = Reto(
        id=uuid.uuid4(),
        rfc=rfc,
        reto=secrets.token_bytes(32),
        creado_en=now,
        expira_en=now + dt.timedelta(seconds=settings.reto_ttl_seconds),
    )
    session.add(reto)
    await session.flush()
    return reto


async def rfc_of_reto(session: AsyncSession, reto_id: uuid.UUID) -> str | None:
    """The RFC a challenge was asked for, so a proof counts against that RFC's e.firma quota."""
    return await session.scalar(select(Reto.rfc).where(Reto.id == reto_id))


def _b64(value: str, code: ProblemCode, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Problem(code, f"{what} debe venir en base64.") from None


async def _prove(
    session: AsyncSession,
    prueba: PruebaEfirma,
    settings: Settings,
    now: dt.datetime,
    revocation: efirma.RevocationCheck | None,
) -> efirma.EfirmaIdentity:
    """Consumes the challenge and returns the proven e.firma identity, or raises the precise problem."""
    reto = await session.scalar(select(Reto).where(Reto.id == prueba.reto_id).with_for_update())
    if reto is None:
        raise Problem("reto_desconocido", "No existe ese reto_id; pida uno nuevo.")
    if reto.usado_en is not None:
        raise Problem("reto_usado", "Cada reto sirve una sola vez; pida uno nuevo.")
    if now >= reto.expira_en:
        raise Problem("reto_vencido", f"El reto venció a las {reto.expira_en:%H:%M:%S} UTC; pida uno nuevo.")
    certificado = _b64(prueba.certificado, "certificado_ilegible", "certificado")
    firma = _b64(prueba.firma, "firma_invalida", "firma")
    anchors = efirma.load_trust_anchors(settings.trust_dir)
    crls = efirma.load_crls(settings.trust_dir)
    try:
        # Chain building, RSA verification and the OCSP request are CPU or network work: off the event loop.
        identity = await asyncio.to_thread(
            efirma.validate_efirma,
            certificado,
            firma,
            reto.reto,
            rfc_esperado=reto.rfc,
            anchors=anchors,
            now=now,
            crls=crls,
            revocation=revocation,
        )
    except efirma.EfirmaError as e:
        retry = {"Retry-After": "60"} if e.code == "revocacion_no_verificable" else None
        raise Problem(e.code, e.detail, headers=retry) from None
    reto.usado_en = now
    return identity


async def _active_credential(session: AsyncSession, rfc: str) -> Credencial | None:
    return await session.scalar(
        select(Credencial).where(Credencial.rfc == rfc, Credencial.estado == "activa").with_for_update()
    )


def mask_email(correo: str) -> str:
    user, _, domain = correo.partition("@")
    return f"{user[:1]}{'*' * max(len(user) - 1, 3)}@{domain}"


async def _new_credential(
    session: AsyncSession,
    keys: Keys,
    settings: Settings,
    identity: efirma.EfirmaIdentity,
    correo: str,
    tipo: str,
    now: dt.datetime,
) -> CredencialEmitida:
    password = passwords.new_password()
    secret = totp.new_secret()
    credential = Credencial(
        id=uuid.uuid4(),
        rfc=identity.rfc,
        correo=correo,
        nombre=identity.nombre,
        hash_contrasena=await passwords.hash_password(password),
        totp_cifrado=totp.encrypt(secret, settings.totp_encryption_key.get_secret_value()),
        estado="activa",
        certificado_numero=identity.numero_certificado,
        creada_en=now,
    )
    session.add(credential)
    try:
        await session.flush()
    except IntegrityError:
        # Another request for the same RFC won the race for the one active credential.
        raise Problem("contrasena_activa", f"{identity.rfc} ya tiene una contraseña activa.") from None
    acuse = await acuses.issue_acuse(
        session,
        keys.sellos,
        tipo=tipo,
        partes=[identity.rfc],
        datos={
            "rfc": identity.rfc,
            "nombre": identity.nombre,
            "correo": mask_email(correo),
            "certificado_efirma": identity.numero_certificado,
        },
        now=now,
        credencial_id=credential.id,
    )
    body = (
        f"Contraseña del Servicio de Intercomunicación de Avisos para el RFC {identity.rfc}:\n\n"
        f"    {password}\n\n"
        "Guárdela en el sistema de nómina que llamará al servicio; nadie se la pedirá por otro medio.\n"
        f"Acuse: {acuse.folio}\n"
    )
    # Sent before the transaction commits: if the mail cannot go out, no credential exists that nobody knows.
    try:
        await send_mail(settings, correo, f"SIA: contraseña para {identity.rfc}", body)
    except MailError as e:
        log.error("mail failed: %s", e)
        raise Problem("correo_no_enviado", "No se pudo enviar el correo; reintente más tarde.") from None
    return CredencialEmitida(identity.rfc, correo, secret, totp.provisioning_uri(secret, identity.rfc), acuse.folio)


async def issue_password(
    session: AsyncSession,
    keys: Keys,
    settings: Settings,
    prueba: PruebaEfirma,
    correo: str,
    now: dt.datetime,
    *,
    revocation: efirma.RevocationCheck | None,
) -> CredencialEmitida:
    """revocation: the OCSP checker of the app's state (None when SIA_EFIRMA_OCSP_URL is unset); required, so
    no caller forgets it."""
    identity = await _prove(session, prueba, settings, now, revocation)
    if await _active_credential(session, identity.rfc) is not None:
        raise Problem(
            "contrasena_activa",
            f"{identity.rfc} ya tiene una contraseña activa. Para obtener otra use POST /v1/contrasenas/renovacion.",
        )
    return await _new_credential(session, keys, settings, identity, correo, "contrasena.emision", now)


async def _end_active(session: AsyncSession, rfc: str, estado: str, now: dt.datetime) -> Credencial:
    current = await _active_credential(session, rfc)
    if current is None:
        raise Problem(
            "sin_contrasena_activa",
            f"{rfc} no tiene una contraseña activa; pida una con POST /v1/contrasenas.",
        )
    current.estado, current.terminada_en = estado, now
    await session.flush()
    return current


async def renew_password(
    session: AsyncSession,
    keys: Keys,
    settings: Settings,
    prueba: PruebaEfirma,
    correo: str | None,
    now: dt.datetime,
    *,
    revocation: efirma.RevocationCheck | None,
) -> CredencialEmitida:
    identity = await _prove(session, prueba, settings, now, revocation)
    old = await _end_active(session, identity.rfc, "renovada", now)
    return await _new_credential(session, keys, settings, identity, correo or old.correo, "contrasena.renovacion", now)


async def cancel_password(
    session: AsyncSession,
    keys: Keys,
    settings: Settings,
    prueba: PruebaEfirma,
    now: dt.datetime,
    *,
    revocation: efirma.RevocationCheck | None,
) -> tuple[str, str]:
    identity = await _prove(session, prueba, settings, now, revocation)
    old = await _end_active(session, identity.rfc, "cancelada", now)
    acuse = await acuses.issue_acuse(
        session,
        keys.sellos,
        tipo="contrasena.cancelacion",
        partes=[identity.rfc],
        datos={"rfc": identity.rfc, "nombre": identity.nombre, "certificado_efirma": identity.numero_certificado},
        now=now,
        credencial_id=old.id,
    )
    return identity.rfc, acuse.folio


# ------------------------------------------------------------------ tokens


# RFC 6749 §5.2's error codes: the token endpoint's own registry (OAuth libraries match on them).
OAuthErrorCode = Literal[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    # Registered by RFC 6749 §4.1.2.1 and used here, as OAuth libraries expect, for a 503 with Retry-After.
    "temporarily_unavailable",
]


class TokenError(Exception):
    """An RFC 6749 §5.2 error; `problem` is the registry code the portal's sign-in answers with instead."""

    def __init__(
        self,
        error: OAuthErrorCode,
        description: str,
        status: int = 400,
        retry_after: int | None = None,
        problem: ProblemCode = "credenciales_incorrectas",
    ) -> None:
        super().__init__(error)
        self.error, self.description, self.status, self.retry_after = error, description, status, retry_after
        self.problem = problem


WRONG_CREDENTIALS = (
    "RFC, contraseña o código OTP incorrectos. Cada código OTP sirve una sola vez: si otro programa con la misma "
    "contraseña pidió un token en estos 30 s, espere el código siguiente."
)


def _bad_credentials() -> TokenError:
    # A new instance each time: a shared one would collect the traceback of every failed login.
    # The same answer for every cause (no hint of which part was right); the reminder about codes being
    # single-use is for two programs sharing one credential within the same 30 s.
    return TokenError("invalid_client", WRONG_CREDENTIALS, status=401)


async def _locked_for(session: AsyncSession, rfc: str, now: dt.datetime) -> int | None:
    until = await session.scalar(select(BloqueoToken.bloqueado_hasta).where(BloqueoToken.rfc == rfc))
    return int((until - now).total_seconds()) + 1 if until and until > now else None


async def _record_failure(session: AsyncSession, rfc: str, settings: Settings, now: dt.datetime) -> None:
    window = dt.timedelta(minutes=settings.lockout_minutes)
    in_window = BloqueoToken.primer_fallo > now - window
    # TOTP failures after a right password count within a window; enough of them lock the RFC for a while.
    counted = await session.execute(
        insert(BloqueoToken)
        .values(rfc=rfc, fallos=1, primer_fallo=now)
        .on_conflict_do_update(
            index_elements=["rfc"],
            set_={
                "fallos": case((in_window, BloqueoToken.fallos + 1), else_=1),
                "primer_fallo": case((in_window, BloqueoToken.primer_fallo), else_=now),
            },
        )
        .returning(BloqueoToken.fallos)
    )
    if counted.scalar_one() >= settings.totp_max_failures:
        await session.execute(
            update(BloqueoToken)
            .where(BloqueoToken.rfc == rfc)
            .values(bloqueado_hasta=now + window, fallos=0, primer_fallo=now)
        )


async def exchange_token(
    session: AsyncSession,
    keys: Keys,
    settings: Settings,
    limiter: RateLimiter,
    gate: passwords.VerificationGate,
    *,
    rfc: str,
    password: str,
    otp: str,
    source: str,
    now: dt.datetime,
) -> tuple[str, int]:
    """(access token, seconds to expiry); raises TokenError. An unknown RFC costs one Argon2 verify too.

    Two budgets, so that a stranger can neither burn the CPU nor lock an owner out: wrong passwords (and unknown
    RFCs) spend the budget of their source address; only attempts whose password was right, TOTP guesses, count
    toward the RFC's lockout, and those are checked one at a time per RFC."""
    try:
        # In front of Argon2 (19 MiB and ~25 ms of a core each), for /v1/token and the portal's sign-in alike.
        # Per address first, or random client_ids would each get a fresh budget.
        await limiter.hit(settings.rate_limit_token_ip, f"token-ip:{source}")
        await limiter.hit(settings.rate_limit_token, f"token:{rfc}:{source}")
        # Checked, not spent: a right password must not cost the budget of a busy office behind one address.
        await limiter.check(settings.rate_limit_token_fallos, f"token-fallos:{source}")
    except RateLimited as e:
        raise _throttled(e) from None
    credential = await session.scalar(select(Credencial).where(Credencial.rfc == rfc, Credencial.estado == "activa"))
    try:
        with gate.slot(), anyio.CancelScope(shield=True):
            # Shielded: a client that hangs up must not free the slot while its thread still hashes.
            password_ok = await passwords.verify_password(password, credential.hash_contrasena if credential else None)
    except passwords.Ocupado:
        raise TokenError(
            "temporarily_unavailable",
            "Hay demasiadas verificaciones de contraseña en curso; reintente en 1 s.",
            status=503,
            retry_after=1,
            problem="verificaciones_ocupadas",
        ) from None
    if credential is None or not password_ok:
        try:
            await limiter.hit(settings.rate_limit_token_fallos, f"token-fallos:{source}")
        except RateLimited:
            pass  # this one is answered as wrong; the next one from the source gets the 429
        # No lockout row: the RFC may have no credential, and its owner is not the one guessing.
        raise _bad_credentials()
    # The password was right: one attempt per RFC at a time, until this transaction commits, so that a crowd
    # of concurrent TOTP guesses cannot all be checked against the same failure count.
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"token:{rfc}"})
    retry = await _locked_for(session, rfc, now)
    if retry is not None:
        raise TokenError(
            "invalid_client",
            f"Demasiados intentos fallidos; reintente en {retry} s.",
            status=429,
            retry_after=retry,
            problem="rfc_bloqueado",
        )
    secret = totp.decrypt(credential.totp_cifrado, settings.totp_encryption_key.get_secret_value())
    step = totp.matched_step(secret, otp, now)
    if step is not None:
        # Accept each step at most once, even across replicas: only a later step moves the mark.
        accepted = await session.execute(
            update(Credencial)
            .where(
                Credencial.id == credential.id,
                (Credencial.totp_ultimo_paso.is_(None)) | (Credencial.totp_ultimo_paso < step),
            )
            .values(totp_ultimo_paso=step)
        )
        # An UPDATE gives a CursorResult (it has rowcount); AsyncSession.execute is typed with the base Result.
        if cast(CursorResult[Any], accepted).rowcount == 1:
            await session.execute(delete(BloqueoToken).where(BloqueoToken.rfc == rfc))
            ttl = dt.timedelta(minutes=settings.token_ttl_minutes)
            token = tokens.issue_access_token(
                keys.tokens,
                sub=rfc,
                credencial_id=credential.id,
                issuer=settings.token_issuer,
                audience=settings.token_audience,
                ttl=ttl,
                now=now,
            )
            return token, int(ttl.total_seconds())
        log.warning("totp replay refused for a credential")
        # A right password with a code already used is a restarted client, not a guess: refused, not counted.
        raise _bad_credentials()
    await _record_failure(session, rfc, settings, now)
    raise _bad_credentials()


def _throttled(limited: RateLimited) -> TokenError:
    retry = limited.retry_after
    return TokenError(
        "invalid_client",
        f"Demasiados intentos desde su dirección; reintente en {retry} s.",
        status=429,
        retry_after=retry,
        problem="limite_de_tasa",
    )


def credential_gone() -> Problem:
    """The 401 of a token whose password was renewed or cancelled after it was issued."""
    return Problem(
        "credencial_no_vigente",
        "La contraseña con la que se emitió este token fue renovada o cancelada.",
        headers={"WWW-Authenticate": 'Bearer realm="sia", error="invalid_token"'},
    )


async def require_still_active(session: AsyncSession, caller: tokens.Caller) -> None:
    """For a request that waited (a long poll) after the caller dependency let it in: its credential may have
    been renewed or cancelled meanwhile."""
    active = await session.scalar(select(token_credential_in_force(caller.credencial_id, caller.rfc)))
    if not active:
        raise credential_gone()
