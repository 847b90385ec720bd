"""Access tokens already verified, kept in process memory until they expire (the signature check was a
noticeable share of a small page's CPU). Pure: no HTTP, no database.

A hit still re-checks what can change while a token lives, so the cache never widens what verification
accepts: the clock against `exp`, and that the key which signed it is still one the ring verifies with (a key
removed, or retired past its retention, refuses its cached tokens at once). Entries are keyed by a hash of
the whole token, so a token altered in any byte is a miss and goes through full verification. Revocation is
not a token property: the credential's state is still read from the database on every request.

It imports nothing of app/: app.security.keys holds one per process (Keys.verified_tokens) and
app.security.tokens imports keys, so the full verification is handed in by the caller (deps.current_caller
passes tokens.verify_access_token) instead of imported here, which would be an import cycle."""

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import jwt

MAX_ENTRIES = 10_000


class Ring(Protocol):
    """What a hit asks of the key ring (app.security.keys.KeyRing): is the key that signed it still verifying?"""

    def find(self, kid: str, now: dt.datetime) -> object | None: ...


class Claims(Protocol):
    @property
    def exp(self) -> int: ...


C = TypeVar("C", bound=Claims)


class VerifiedTokens:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        # token hash -> (claims, kid that signed it); insertion order is age order, for eviction.
        self._entries: dict[bytes, tuple[Any, str]] = {}

    def verify(
        self, ring: Ring, token: str, *, issuer: str, audience: str, now: dt.datetime, verifier: Callable[..., C]
    ) -> C:
        """verifier's answer (and its exception) for this token, from memory when it was verified before.
        verifier is tokens.verify_access_token: it is called as verifier(ring, token, issuer=, audience=, now=)."""
        key = hashlib.sha256(f"{issuer}\n{audience}\n{token}".encode()).digest()
        cached = self._entries.get(key)
        if cached is not None:
            claims, kid = cached
            if now.timestamp() < claims.exp and ring.find(kid, now) is not None:
                return claims
            del self._entries[key]  # expired, or its key is gone: verified again (and refused) below
        claims = verifier(ring, token, issuer=issuer, audience=audience, now=now)
        self._remember(key, claims, jwt.get_unverified_header(token)["kid"], now)
        return claims

    def _remember(self, key: bytes, claims: Claims, kid: str, now: dt.datetime) -> None:
        if len(self._entries) >= self.max_entries:
            # Expired entries go first; if none, the oldest: bounded whatever the traffic.
            for stale in [k for k, (c, _kid) in self._entries.items() if c.exp <= now.timestamp()]:
                del self._entries[stale]
            while len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]
        self._entries[key] = (claims, kid)

    def __len__(self) -> int:
        return len(self._entries)
