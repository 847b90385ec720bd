"""Signing keys (ES256, P-256): the newest key of a ring signs; older ones keep verifying, and stay in the
JWKS, until `retain` after they were replaced. Keys are PEM files (mode 0600) in a folder of the data folder,
or a single PEM from settings."""

import base64
import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


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


def _public_members(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
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


def rotate(folder: Path, now: dt.datetime | None = None) -> SigningKey:
    """Adds a new key to the folder; it signs from now on."""
    now = now or dt.datetime.now(dt.UTC)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = SigningKey.from_private_key(ec.generate_private_key(ec.SECP256R1()), now)
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = folder / f"{now:%Y%m%dT%H%M%S%fZ}-{key.kid[:16]}.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key


class KeyRing:
    def __init__(self, folder: Path | None, *, retain: dt.timedelta | None, pem: bytes | None = None) -> None:
        self.folder, self.retain, self._pem = folder, retain, pem
        self._keys: list[SigningKey] = []
        self._seen_mtime: float | None = None
        self._load()

    def _load(self) -> None:
        if self._pem is not None:
            self._keys = [_load_pem(self._pem, dt.datetime.min.replace(tzinfo=dt.UTC))]
            return
        assert self.folder is not None
        self._seen_mtime = self.folder.stat().st_mtime if self.folder.is_dir() else None
        keys = []
        for path in sorted(self.folder.glob("*.pem")) if self.folder.is_dir() else []:
            created = dt.datetime.strptime(path.name.split("-")[0], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=dt.UTC)
            keys.append(_load_pem(path.read_bytes(), created))
        self._keys = sorted(keys, key=lambda k: k.created)

    def _refresh(self) -> None:
        # `sia keys rotate` on any replica's shared folder is picked up without a restart.
        if self.folder is not None and self._pem is None:
            mtime = self.folder.stat().st_mtime if self.folder.is_dir() else None
            if mtime != self._seen_mtime:
                self._load()

    @property
    def empty(self) -> bool:
        self._refresh()
        return not self._keys

    @property
    def active(self) -> SigningKey:
        self._refresh()
        if not self._keys:
            raise RuntimeError(f"no signing key in {self.folder}: run `sia keys rotate`")
        return self._keys[-1]

    def published(self, now: dt.datetime) -> list[SigningKey]:
        """The active key and the replaced ones still within `retain` of being replaced."""
        self._refresh()
        keys = []
        for key, successor in zip(self._keys, [*self._keys[1:], None], strict=True):
            if successor is None or self.retain is None or successor.created + self.retain > now:
                keys.append(key)
        return keys

    def find(self, kid: str, now: dt.datetime) -> SigningKey | None:
        return next((k for k in self.published(now) if k.kid == kid), None)
