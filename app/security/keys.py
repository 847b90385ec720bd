"""Signing keys (ES256, P-256): the newest key of a ring signs; older ones keep verifying, and stay in the
JWKS, until `retain` after they were replaced. Keys are PEM files (mode 0600) in a folder of the data folder,
or a single PEM from settings.

A ring also verifies with the public keys other replicas published (`set_shared`, fed from the database by
app/keys_store.py), so a replica with its own folder accepts every other replica's tokens. A rotation names
its key with a start time a little in the future: the key is published at once and signs only from then on,
so every replica has learned it before the first token it signs arrives."""

import base64
import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from app.security.token_cache import VerifiedTokens


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey
    created: dt.datetime

    @classmethod
    def from_private_key(cls, key: ec.EllipticCurvePrivateKey, created: dt.datetime) -> "SigningKey":
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("signing keys must be EC P-256 (ES256)")
        return cls(_thumbprint(_public_members(key)), key, created)

    def public_jwk(self) -> dict[str, str]:
        return {**_public_members(self.private_key), "kid": self.kid, "use": "sig", "alg": "ES256"}

    def verifying_key(self) -> ec.EllipticCurvePublicKey:
        return self.private_key.public_key()


@dataclass(frozen=True)
class PublicKey:
    """Another replica's key, known by its public half only: it verifies, it never signs."""

    kid: str
    public_key: ec.EllipticCurvePublicKey
    created: dt.datetime
    replaced: dt.datetime | None = None

    @classmethod
    def from_members(cls, x: str, y: str, created: dt.datetime, replaced: dt.datetime | None) -> "PublicKey":
        numbers = ec.EllipticCurvePublicNumbers(_b64url_int(x), _b64url_int(y), ec.SECP256R1())
        key = numbers.public_key()
        return cls(_thumbprint(_members_of(key)), key, created, replaced)

    def public_jwk(self) -> dict[str, str]:
        return {**_members_of(self.public_key), "kid": self.kid, "use": "sig", "alg": "ES256"}

    def verifying_key(self) -> ec.EllipticCurvePublicKey:
        return self.public_key


def _b64url_int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def _public_members(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    return _members_of(key.public_key())


def _members_of(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    numbers = key.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
    }


def _thumbprint(members: dict[str, str]) -> str:
    """RFC 7638 JWK thumbprint: a kid derived from the key itself, the same on every replica."""
    canonical = json.dumps({k: members[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def _load_pem(data: bytes, created: dt.datetime) -> SigningKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("signing keys must be EC P-256 (ES256)")
    return SigningKey.from_private_key(key, created)


def rotate(folder: Path, now: dt.datetime | None = None, *, activate_after: dt.timedelta | None = None) -> SigningKey:
    """Adds a new key to the folder; it signs from `now + activate_after` on, and is published from now.

    Written under a name the ring ignores and renamed into place: a ring that refreshes meanwhile sees the
    folder without the key or with the whole key, never an empty or half-written .pem."""
    now = now or dt.datetime.now(dt.UTC)
    starts = now + (activate_after or dt.timedelta(0))
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = SigningKey.from_private_key(ec.generate_private_key(ec.SECP256R1()), starts)
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    name = f"{starts:%Y%m%dT%H%M%S%fZ}-{key.kid[:16]}.pem"
    partial = folder / f".{name}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, folder / name)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return key


class KeyRing:
    def __init__(self, folder: Path | None, *, retain: dt.timedelta | None, pem: bytes | None = None) -> None:
        self.folder, self.retain, self._pem = folder, retain, pem
        self._keys: list[SigningKey] = []
        self._shared: list[PublicKey] = []
        self._seen_mtime: float | None = None
        self._load()

    def _load(self) -> None:
        if self._pem is not None:
            self._keys = [_load_pem(self._pem, dt.datetime.min.replace(tzinfo=dt.UTC))]
            return
        assert self.folder is not None
        mtime = self.folder.stat().st_mtime if self.folder.is_dir() else None
        keys = []
        for path in sorted(self.folder.glob("*.pem")) if self.folder.is_dir() else []:
            created = dt.datetime.strptime(path.name.split("-")[0], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=dt.UTC)
            keys.append(_load_pem(path.read_bytes(), created))
        self._keys = sorted(keys, key=lambda k: k.created)
        # Recorded only once the folder was read whole: a failed read is tried again on the next refresh.
        self._seen_mtime = mtime

    def _refresh(self) -> None:
        # `sia keys rotate` on any replica's shared folder is picked up without a restart.
        if self.folder is not None and self._pem is None:
            mtime = self.folder.stat().st_mtime if self.folder.is_dir() else None
            if mtime != self._seen_mtime:
                try:
                    self._load()
                except (OSError, ValueError):
                    # A .pem another tool is still writing: keep signing with the keys known so far.
                    pass

    def refresh(self) -> None:
        self._refresh()

    @property
    def empty(self) -> bool:
        self._refresh()
        return not self._keys

    @property
    def active(self) -> SigningKey:
        self._refresh()
        if not self._keys:
            raise RuntimeError(f"no signing key in {self.folder}: run `sia keys rotate`")
        now = dt.datetime.now(dt.UTC)
        started = [k for k in self._keys if k.created <= now]
        # None started yet (a first key made by a rotation, or a clock set back): the newest, as before.
        return started[-1] if started else self._keys[-1]

    def local(self) -> list[tuple[SigningKey, dt.datetime | None]]:
        """This replica's keys, each with when its successor replaced it (None: still the newest)."""
        self._refresh()
        successors: list[SigningKey | None] = [*self._keys[1:], None] if self._keys else []
        return [(k, s.created if s else None) for k, s in zip(self._keys, successors, strict=True)]

    def set_shared(self, keys: list[PublicKey]) -> None:
        """The public keys every replica published (this one's included: they are skipped by kid)."""
        self._shared = list(keys)

    def published(self, now: dt.datetime) -> list[SigningKey | PublicKey]:
        """The active key, the ones about to start, the replaced ones still within `retain` of being replaced,
        and other replicas' keys by the same rule."""
        keys: list[SigningKey | PublicKey] = []  # local() reads the folder again if it changed
        for key, replaced in self.local():
            if replaced is None or self.retain is None or replaced + self.retain > now:
                keys.append(key)
        local_kids = {k.kid for k in self._keys}
        for shared in self._shared:
            if shared.kid in local_kids:
                continue
            if shared.replaced is None or self.retain is None or shared.replaced + self.retain > now:
                keys.append(shared)
        return keys

    def find(self, kid: str, now: dt.datetime) -> SigningKey | PublicKey | None:
        return next((k for k in self.published(now) if k.kid == kid), None)


@dataclass
class Keys:
    tokens: KeyRing
    sellos: KeyRing
    # Access tokens this process already verified, until they expire (app/security/token_cache.py).
    verified_tokens: VerifiedTokens = field(default_factory=VerifiedTokens)


class KeyPolicy(Protocol):
    """What load_keys reads of the settings (app.settings.Settings fits): security imports no layer above it."""

    @property
    def env(self) -> Literal["development", "test", "production"]: ...
    @property
    def keys_dir(self) -> Path: ...
    @property
    def token_ttl_minutes(self) -> int: ...
    @property
    def token_key_pem(self) -> SecretStr | None: ...
    @property
    def seal_key_pem(self) -> SecretStr | None: ...


def load_keys(settings: KeyPolicy) -> Keys:
    """Token keys are published until their tokens expire; seal keys forever (acuses outlive rotations)."""
    ttl = dt.timedelta(minutes=settings.token_ttl_minutes + 1)
    folders = {"tokens": settings.keys_dir / "tokens", "sellos": settings.keys_dir / "sellos"}
    pems = {"tokens": settings.token_key_pem, "sellos": settings.seal_key_pem}
    rings = {}
    for name, folder in folders.items():
        pem = pems[name]
        ring = KeyRing(
            folder, retain=ttl if name == "tokens" else None, pem=pem.get_secret_value().encode() if pem else None
        )
        if ring.empty:
            if settings.env == "production":
                raise RuntimeError(f"no hay llave de firma en {folder}: ejecute `sia keys rotate` antes de servir")
            rotate(folder)  # development and tests: a key on first start
        rings[name] = ring
    return Keys(tokens=rings["tokens"], sellos=rings["sellos"])
