"""Rate limits per caller (`limits`, moving window, in process memory: per replica, which DESIGN §6 allows).
Applied in dependencies, not middleware, so streaming responses are untouched."""

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from app.problems import Problem


def efirma_key(client_ip: str, rfc: str | None) -> str:
    """The e.firma routes count per IP and RFC: many people behind one NAT or proxy share an IP, and one of
    them exhausting it must not stop the others proving their own e.firma."""
    return f"efirma:{client_ip}:{rfc or '-'}"


@dataclass(frozen=True)
class Cuota:
    headers: dict[str, str]


class RateLimiter:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, rule: str, key: str) -> Cuota:
        """Counts one request; raises a 429 problem with Retry-After and RateLimit headers when over."""
        if not self.enabled:
            return Cuota({})
        item: RateLimitItem = parse(rule)
        allowed = self._limiter.hit(item, key)
        stats = self._limiter.get_window_stats(item, key)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        headers = {
            "RateLimit-Policy": f'"{rule}";q={item.amount};w={item.get_expiry()}',
            "RateLimit": f'"{rule}";r={stats.remaining};t={reset}',
        }
        if not allowed:
            raise Problem(
                "limite_de_tasa",
                f"Límite de {rule} superado; reintente en {max(reset, 1)} s.",
                headers={**headers, "Retry-After": str(max(reset, 1))},
            )
        return Cuota(headers)

    def check(self, rule: str, key: str) -> None:
        """Raises the same 429 problem as hit() when `key` has no room left under `rule`, without counting:
        for budgets that only some outcomes spend (pair it with hit() once the outcome is known)."""
        if not self.enabled:
            return
        item: RateLimitItem = parse(rule)
        if self._limiter.test(item, key):
            return
        stats = self._limiter.get_window_stats(item, key)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        raise Problem(
            "limite_de_tasa",
            f"Límite de {rule} superado; reintente en {reset} s.",
            headers={"Retry-After": str(reset)},
        )
