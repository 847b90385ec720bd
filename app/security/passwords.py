"""Passwords: long random secrets sent by e-mail, stored as Argon2id hashes; hashing runs off the event loop."""

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

# OWASP's minimum for Argon2id: 19 MiB, 2 iterations, 1 lane (~23 ms per verify on one core).
_hasher = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=19 * 1024, parallelism=1),))
# Compared against when the RFC has no credential, so an unknown RFC costs the same time as a known one.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(32))


def new_password() -> str:
    """256 random bits, URL-safe: nobody types it, payroll systems store it."""
    return secrets.token_urlsafe(32)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password: str, hashed: str | None) -> bool:
    ok = await asyncio.to_thread(_hasher.verify, password, hashed or _DUMMY_HASH)
    return ok and hashed is not None


class Ocupado(Exception):
    """Every verification slot of this process is taken."""


class VerificationGate:
    """At most `limit` Argon2 verifications at once in this process (each holds 19 MiB and a core for ~25 ms).
    Beyond that a request is refused at once instead of queueing: a flood then costs the attacker, not the
    memory of the service or the latency of every other login."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.active >= self.limit:
            raise Ocupado
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
