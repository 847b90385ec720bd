"""Every JWT and JWS call of the service lives here (PyJWT, ES256 pinned).

Access tokens and acuse seals use different key rings and different `typ` headers, so one can never
be taken for the other (RFC 8725 §3.11)."""

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.api_jws import PyJWS

from app.security.keys import KeyRing

ALGORITHM = "ES256"
ACCESS_TOKEN_TYPE = "at+jwt"
SEAL_TYPE = "acuse+jws"
_jws = PyJWS(algorithms=[ALGORITHM])


class InvalidToken(Exception):
    """The reason is for logs only; clients get one generic answer."""


@dataclass(frozen=True)
class Caller:
    """Who is calling, from a verified access token (app.deps.current_caller) or a portal session."""

    rfc: str
    credencial_id: uuid.UUID
    jti: str


@dataclass(frozen=True)
class AccessClaims:
    sub: str
    credencial_id: uuid.UUID
    jti: str
    exp: int


def issue_access_token(
    ring: KeyRing,
    *,
    sub: str,
    credencial_id: uuid.UUID,
    issuer: str,
    audience: str,
    ttl: dt.timedelta,
    now: dt.datetime,
) -> str:
    key = ring.active
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": sub,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "jti": uuid.uuid4().hex,
        "cid": str(credencial_id),  # which credential: renewal or cancellation kills its tokens at once
    }
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE})


def verify_access_token(ring: KeyRing, token: str, *, issuer: str, audience: str, now: dt.datetime) -> AccessClaims:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        raise InvalidToken(f"unreadable header: {e}") from None
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM or header.get("typ") != ACCESS_TOKEN_TYPE or not isinstance(kid, str):
        raise InvalidToken(f"unexpected header {header!r}")
    key = ring.find(kid, now)
    if key is None:
        raise InvalidToken("unknown kid")
    try:
        claims = jwt.decode(
            token,
            key.verifying_key(),
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={"require": ["iss", "aud", "sub", "iat", "exp", "jti", "cid"], "strict_aud": True},
        )
        return AccessClaims(claims["sub"], uuid.UUID(claims["cid"]), claims["jti"], claims["exp"])
    except (jwt.PyJWTError, ValueError, TypeError) as e:
        raise InvalidToken(str(e)) from None


def seal(ring: KeyRing, payload: bytes) -> str:
    """A compact JWS over the payload (the acuse's cadena original), verifiable with the published JWKS."""
    key = ring.active
    return _jws.encode(payload, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": SEAL_TYPE})


def verify_seal(jwks: dict[str, Any], sealed: str) -> bytes:
    """What anyone holding an acuse can do: check the seal against the published keys; returns the payload."""
    header = jwt.get_unverified_header(sealed)
    if header.get("typ") != SEAL_TYPE:
        raise InvalidToken("not an acuse seal")
    for jwk in jwks["keys"]:
        if jwk.get("kid") == header.get("kid"):
            return _jws.decode(sealed, jwt.PyJWK(jwk).key, algorithms=[ALGORITHM])
    raise InvalidToken("unknown kid")


def jwks(*rings: KeyRing, now: dt.datetime) -> dict[str, Any]:
    return {"keys": [key.public_jwk() for ring in rings for key in ring.published(now)]}
