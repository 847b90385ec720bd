"""Portal session secrets: what the cookie carries and how the database knows it (no HTTP, no database)."""

import hashlib
import secrets

# `__Host-` makes the browser refuse the cookie unless it is Secure, host-only and Path=/ (RFC 6265bis §4.1.3):
# no sibling subdomain can plant or shadow it. Over plain http (development) browsers refuse that prefix.
COOKIE_SECURE = "__Host-sia_sesion"
COOKIE_PLAIN = "sia_sesion"


def new_session_token() -> str:
    """256 random bits: the cookie's value, never stored."""
    return secrets.token_urlsafe(32)


def session_digest(token: str) -> bytes:
    """What the database keys the session by: a stolen table or backup opens no session."""
    return hashlib.sha256(token.encode()).digest()
