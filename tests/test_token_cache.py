"""The verified-token cache (app/security/token_cache.py) under attack: it must never accept what full
verification would refuse. Each test first lets the token be cached, then tries it when it must fail."""

import base64
import datetime as dt
import json
import uuid

import pytest
import time_machine

from app.security import tokens
from app.security.keys import KeyRing, rotate
from app.security.token_cache import VerifiedTokens
from app.security.tokens import InvalidToken

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
TTL = dt.timedelta(minutes=5)
CLAIMS = {"issuer": "https://sia.test", "audience": "sia"}


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def ring(tmp_path, clock) -> KeyRing:
    rotate(tmp_path / "tokens", NOW - dt.timedelta(hours=1))
    return KeyRing(tmp_path / "tokens", retain=TTL)


def issue(ring: KeyRing, now: dt.datetime = NOW) -> str:
    return tokens.issue_access_token(ring, sub="AAA010101AAA", credencial_id=uuid.uuid4(), ttl=TTL, now=now, **CLAIMS)


def verify(cache: VerifiedTokens, ring: KeyRing, token: str) -> tokens.AccessClaims:
    return cache.verify(ring, token, now=dt.datetime.now(dt.UTC), verifier=tokens.verify_access_token, **CLAIMS)


def test_a_cached_token_is_answered_without_verifying_again(ring):
    cache, token = VerifiedTokens(), issue(ring)
    first = verify(cache, ring, token)
    calls = []
    again = cache.verify(ring, token, now=NOW, verifier=lambda *a, **k: calls.append(a), **CLAIMS)
    assert again == first and calls == []


def test_an_expired_cached_token_is_refused(ring, clock):
    cache, token = VerifiedTokens(), issue(ring)
    verify(cache, ring, token)
    clock.move_to(NOW + TTL - dt.timedelta(seconds=1))
    verify(cache, ring, token)  # still alive
    clock.move_to(NOW + TTL)  # exp itself is already too late, as for PyJWT
    with pytest.raises(InvalidToken):
        verify(cache, ring, token)
    assert len(cache) == 0


def test_a_token_whose_key_was_removed_is_refused_even_if_cached(ring, tmp_path):
    cache, token = VerifiedTokens(), issue(ring)
    verify(cache, ring, token)
    rotate(tmp_path / "tokens", NOW - dt.timedelta(minutes=1))  # a successor, so the ring still signs
    old = sorted((tmp_path / "tokens").glob("*.pem"))[0]
    old.unlink()  # the operator removes a compromised key
    with pytest.raises(InvalidToken):
        verify(cache, ring, token)


def test_a_token_whose_key_was_retired_past_its_retention_is_refused_even_if_cached(ring, tmp_path, clock):
    long_lived = tokens.issue_access_token(
        ring, sub="AAA010101AAA", credencial_id=uuid.uuid4(), ttl=dt.timedelta(hours=2), now=NOW, **CLAIMS
    )
    cache = VerifiedTokens()
    verify(cache, ring, long_lived)
    rotate(tmp_path / "tokens", NOW)  # replaced now: verifies for TTL more, then leaves the ring
    clock.move_to(NOW + TTL - dt.timedelta(seconds=1))
    verify(cache, ring, long_lived)
    clock.move_to(NOW + TTL + dt.timedelta(seconds=1))
    with pytest.raises(InvalidToken):
        verify(cache, ring, long_lived)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_tampered_token_is_never_served_from_the_cache(ring):
    cache, token = VerifiedTokens(), issue(ring)
    verify(cache, ring, token)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    other_payload = _b64(json.dumps({**claims, "sub": "BBB010101BBB"}).encode())
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for forged in (f"{header}.{other_payload}.{signature}", f"{header}.{payload}.{flipped}", token + "x"):
        with pytest.raises(InvalidToken):
            verify(cache, ring, forged)
    assert verify(cache, ring, token).sub == "AAA010101AAA"


def test_the_cache_is_bounded(ring):
    cache = VerifiedTokens(max_entries=3)
    for _ in range(10):
        verify(cache, ring, issue(ring))
    assert len(cache) == 3
