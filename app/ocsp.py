"""Asking the SAT's OCSP responder whether an e.firma is revoked (SIA_EFIRMA_OCSP_URL), with a short cache.

The verifier (app/security/efirma.py) calls an OcspChecker from the worker thread it already runs in, so the
HTTP request never blocks the event loop; building the request and checking the answer are efirma's pure
functions. One checker per app (lifespan state): its cache is per replica, which is fine for minutes."""

import datetime as dt
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from app.security import efirma
from app.settings import Settings

log = logging.getLogger(__name__)

# Given the DER request, returns the DER answer; raises OSError (URLError, timeouts) when unreachable.
Fetch = Callable[[bytes], bytes]
CACHE_ENTRIES = 10_000


def http_fetch(url: str, timeout: float) -> Fetch:
    def fetch(request: bytes) -> bytes:
        http_request = urllib.request.Request(  # noqa: S310 - settings allow http(s) URLs only
            url, data=request, method="POST", headers={"Content-Type": "application/ocsp-request"}
        )
        with urllib.request.urlopen(http_request, timeout=timeout) as answer:  # noqa: S310 - see above
            # An OCSP answer is a few KiB; a responder that sends more is not one.
            return answer.read(1_000_000)

    return fetch


@dataclass(frozen=True)
class _Cached:
    answer: efirma.OcspAnswer
    until: float  # time.monotonic()


class OcspChecker:
    def __init__(self, fetch: Fetch, *, cache_seconds: int, fail_open: bool) -> None:
        self._fetch = fetch
        self._cache_seconds = cache_seconds
        self._fail_open = fail_open
        self._cache: dict[tuple[bytes, int], _Cached] = {}
        self._lock = threading.Lock()  # called from worker threads

    @classmethod
    def from_settings(cls, settings: Settings) -> "OcspChecker | None":
        if not settings.efirma_ocsp_url:
            return None
        return cls(
            http_fetch(settings.efirma_ocsp_url, settings.efirma_ocsp_timeout_seconds),
            cache_seconds=settings.efirma_ocsp_cache_seconds,
            fail_open=settings.efirma_ocsp_fail_open,
        )

    def __call__(self, cert: x509.Certificate, issuer: x509.Certificate, identity: efirma.EfirmaIdentity) -> None:
        """Returns when the responder says good; raises EfirmaError otherwise (efirma.RevocationCheck)."""
        key = (issuer.fingerprint(hashes.SHA256()), cert.serial_number)
        answer = self._cached(key)
        if answer is None:
            try:
                now = dt.datetime.now(dt.UTC)
                answer = efirma.read_ocsp_response(self._fetch(efirma.ocsp_request(cert, issuer)), cert, issuer, now)
            except (OSError, urllib.error.URLError, efirma.OcspError) as e:
                accepted = "; aceptada (SIA_EFIRMA_OCSP_FAIL_OPEN)" if self._fail_open else ""
                log.warning("OCSP sin respuesta útil para %s%s: %s", identity.numero_certificado, accepted, e)
                if self._fail_open:
                    return
                raise efirma.EfirmaError(
                    "revocacion_no_verificable",
                    "No se pudo confirmar con el SAT (OCSP) que la e.firma no esté revocada. Reintente en unos "
                    "minutos.",
                ) from None
            self._store(key, answer)
        if answer.status == "revoked":
            raise efirma.revoked_error(identity, answer.revoked_at)
        if answer.status != "good":
            raise efirma.EfirmaError(
                "revocacion_no_verificable",
                f"El servicio OCSP del SAT no reconoce el certificado {identity.numero_certificado}.",
            )

    def _cached(self, key: tuple[bytes, int]) -> efirma.OcspAnswer | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None or entry.until <= time.monotonic():
                return None
            return entry.answer

    def _store(self, key: tuple[bytes, int], answer: efirma.OcspAnswer) -> None:
        if answer.status == "unknown" or self._cache_seconds <= 0:
            return
        seconds = float(self._cache_seconds)
        if answer.next_update is not None:
            # Never beyond the responder's own nextUpdate.
            seconds = min(seconds, (answer.next_update - dt.datetime.now(dt.UTC)).total_seconds())
        with self._lock:
            if len(self._cache) >= CACHE_ENTRIES:
                now = time.monotonic()
                self._cache = {k: v for k, v in self._cache.items() if v.until > now}
                if len(self._cache) >= CACHE_ENTRIES:
                    self._cache.clear()
            self._cache[key] = _Cached(answer, time.monotonic() + seconds)
