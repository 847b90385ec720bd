"""Rate limits per caller (`limits`, moving window). The counts live in a shared store (Redis or Valkey, named
by SIA_RATE_LIMIT_STORAGE) when one is configured, so that a budget means the same with any number of workers
and replicas; otherwise in process memory, where each process keeps its own count (DESIGN §6 allows it).
Applied in dependencies, not middleware, so streaming responses are untouched; awaited, so a round trip to the
store never blocks the event loop."""

import logging
import math
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

log = logging.getLogger(__name__)

# Valkey speaks Redis' protocol: both go through redis-py (the `limits[redis]` dependency).
SHARED_SCHEMES = {"redis": "redis", "rediss": "rediss", "valkey": "redis", "valkeys": "rediss"}
# A store that does not answer must not hold requests: a loopback or LAN store answers in milliseconds.
STORE_TIMEOUT_SECONDS = 0.5
# After a failure the process counts locally for this long before it tries the store again, so that an outage
# costs one timeout per process and period, not one per request.
STORE_RETRY_SECONDS = 5.0


def shared_store_uri(uri: str) -> str:
    """The redis-py URI of a redis://, rediss://, valkey:// or valkeys:// store; ValueError for anything else."""
    parts = urlsplit(uri)
    if parts.scheme not in SHARED_SCHEMES or not parts.hostname:
        raise ValueError(
            f"almacén de límites no admitido: {parts.scheme!r}; use redis://, rediss://, valkey:// o valkeys://"
        )
    return parts._replace(scheme=SHARED_SCHEMES[parts.scheme]).geturl()


def efirma_key(client_ip: str, rfc: str | None) -> str:
    """The e.firma routes count per IP and RFC: many people behind one NAT or proxy share an IP, and one of
    them exhausting it must not stop the others proving their own e.firma."""
    return f"efirma:{client_ip}:{rfc or '-'}"


class RateLimited(Exception):
    """Over a budget. Security raises no HTTP problem: the web layer answers this as 429 `limite_de_tasa`
    (app.problems), and the token exchange as its RFC 6749 429."""

    def __init__(self, rule: str, retry_after: int, headers: dict[str, str]) -> None:
        super().__init__(f"Límite de {rule} superado; reintente en {retry_after} s.")
        self.retry_after = retry_after
        self.headers = {**headers, "Retry-After": str(retry_after)}


@dataclass(frozen=True)
class Cuota:
    headers: dict[str, str]


class RateLimiter:
    def __init__(self, enabled: bool = True, storage_uri: str | None = None) -> None:
        """storage_uri: a shared store (see shared_store_uri); None counts in this process only."""
        self.enabled = enabled
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared: MovingWindowRateLimiter | None = None
        self._shared_storage: Storage | None = None
        self._shared_down_until = 0.0
        if storage_uri:
            self._shared_storage = RedisStorage(
                shared_store_uri(storage_uri),
                implementation="redispy",
                key_prefix="sia",
                wrap_exceptions=True,
                socket_connect_timeout=STORE_TIMEOUT_SECONDS,
                socket_timeout=STORE_TIMEOUT_SECONDS,
            )
            self._shared = MovingWindowRateLimiter(self._shared_storage)

    @property
    def store(self) -> Literal["compartido", "local", "local_por_falla"]:
        """For /readyz: `compartido`, `local` (none configured) or `local_por_falla` (the shared one failed)."""
        if self._shared is None:
            return "local"
        return "local_por_falla" if time.monotonic() < self._shared_down_until else "compartido"

    async def _count(self, item: RateLimitItem, key: str, *, spend: bool) -> tuple[bool, int, float]:
        """Whether the request fits, the room left and when the window resets (epoch seconds).

        A store that fails falls back to this process's own count rather than to no limit at all (fail closed
        would turn a store outage into an outage of the token route, fail open into unlimited guessing)."""
        if self._shared is not None and time.monotonic() >= self._shared_down_until:
            try:
                return await self._ask(self._shared, item, key, spend=spend)
            except StorageError as e:
                self._shared_down_until = time.monotonic() + STORE_RETRY_SECONDS
                log.warning(
                    "rate-limit store unavailable (%s); counting in this process for %.0f s",
                    type(e.storage_error).__name__,
                    STORE_RETRY_SECONDS,
                )
        return await self._ask(self._local, item, key, spend=spend)

    @staticmethod
    async def _ask(
        limiter: MovingWindowRateLimiter, item: RateLimitItem, key: str, *, spend: bool
    ) -> tuple[bool, int, float]:
        allowed = await (limiter.hit(item, key) if spend else limiter.test(item, key))
        if allowed and not spend:
            return True, 0, 0.0  # check() needs no headers: skip the second round trip
        stats = await limiter.get_window_stats(item, key)
        return allowed, stats.remaining, stats.reset_time

    async def hit(self, rule: str, key: str) -> Cuota:
        """Counts one request; raises RateLimited (Retry-After and RateLimit headers) when over."""
        if not self.enabled:
            return Cuota({})
        item: RateLimitItem = parse(rule)
        allowed, remaining, reset_time = await self._count(item, key, spend=True)
        reset = max(0, math.ceil(reset_time - time.time()))
        headers = {
            "RateLimit-Policy": f'"{rule}";q={item.amount};w={item.get_expiry()}',
            "RateLimit": f'"{rule}";r={remaining};t={reset}',
        }
        if not allowed:
            raise RateLimited(rule, max(reset, 1), headers)
        return Cuota(headers)

    async def check(self, rule: str, key: str) -> None:
        """Raises RateLimited as hit() does when `key` has no room left under `rule`, without counting:
        for budgets that only some outcomes spend (pair it with hit() once the outcome is known)."""
        if not self.enabled:
            return
        item: RateLimitItem = parse(rule)
        allowed, _, reset_time = await self._count(item, key, spend=False)
        if allowed:
            return
        raise RateLimited(rule, max(1, math.ceil(reset_time - time.time())), {})

    async def close(self) -> None:
        """Closes the shared store's connections (the app's shutdown)."""
        if self._shared_storage is not None:
            bridge = getattr(self._shared_storage, "bridge", None)
            client = getattr(bridge, "storage", None)
            if client is not None:
                await client.aclose()
