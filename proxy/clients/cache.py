"""The shared cache of validated client metadata documents, in the store's Redis, under its prefix.

    cimd:<sha256(client_id)>   {"doc", "fresh_until", "stale_until"}   TTL: until stale_until

Only validated documents are written (draft §5.2: never an error, never an invalid document). The
lifetime follows the document host's HTTP caching headers (RFC 9111 §5.2, §5.3) within the operator's
floor and ceiling; the entry outlives its freshness by the stale window, so a host outage is bridged
for a bounded time and no longer. Every replica reads the same entry.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from proxy.clients.document import ClientDocument
from proxy.errors import StoreUnavailable


@dataclass(frozen=True, slots=True)
class CachedDocument:
    document: ClientDocument
    fresh_until: float
    stale_until: float


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def freshness(cache_control: str | None, expires: str | None, date: str | None, *, now: float,
              default_s: int) -> int | None:
    """Seconds the host lets us keep the document, or None for `no-store` (RFC 9111 §5.2.2).

    `s-maxage` (we are shared by every user) wins over `max-age`, which wins over `Expires`;
    `no-cache` means revalidate every time, i.e. 0 before the floor applies."""
    directives: dict[str, str] = {}
    for part in (cache_control or "").split(","):
        name, _, value = part.strip().partition("=")
        if name:
            directives[name.lower()] = value.strip().strip('"')
    if "no-store" in directives:
        return None
    if "no-cache" in directives:
        return 0
    for name in ("s-maxage", "max-age"):
        if name in directives:
            try:
                return max(0, int(directives[name]))
            except ValueError:
                return 0  # RFC 9111 §4.2.1: an invalid value means stale
    if expires is not None:
        at = _http_date(expires)
        if at is None:
            return 0  # RFC 9111 §5.3: an invalid Expires means already expired
        origin_now = _http_date(date) or now
        return max(0, int(at - origin_now))
    return default_s


class DocumentCache:
    """Named operations over the store's Redis client; every key has a TTL."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def key(self, client_id: str) -> str:
        return f"{self.prefix}cimd:{hashlib.sha256(client_id.encode()).hexdigest()}"

    async def get(self, client_id: str) -> CachedDocument | None:
        try:
            raw = await self.redis.get(self.key(client_id))
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(detail=f"cimd cache get: {type(exc).__name__}") from exc
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return CachedDocument(ClientDocument.load(data["doc"]), float(data["fresh_until"]),
                                  float(data["stale_until"]))
        except (ValueError, KeyError, TypeError):
            return None

    async def put(self, document: ClientDocument, *, fresh_s: int, stale_s: int) -> None:
        now = time.time()
        entry = {"doc": document.dump(), "fresh_until": now + fresh_s, "stale_until": now + fresh_s + stale_s}
        ttl = max(1, fresh_s + stale_s)
        try:
            await self.redis.set(self.key(document.client_id), json.dumps(entry), ex=ttl)
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(detail=f"cimd cache put: {type(exc).__name__}") from exc

    async def forget(self, client_id: str) -> None:
        try:
            await self.redis.delete(self.key(client_id))
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(detail=f"cimd cache delete: {type(exc).__name__}") from exc

    # -- one fetch at a time per document, across replicas (issue 23) --------------------------------
    def lock_key(self, client_id: str) -> str:
        return f"{self.prefix}cimd-lock:{hashlib.sha256(client_id.encode()).hexdigest()}"

    async def lock_fetch(self, client_id: str, holder: str, ttl_ms: int) -> bool:
        """Take the document's fetch lock (SET NX PX); False when another replica fetches it now."""
        try:
            return bool(await self.redis.set(self.lock_key(client_id), holder, nx=True, px=ttl_ms))
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(detail=f"cimd fetch lock: {type(exc).__name__}") from exc

    async def unlock_fetch(self, client_id: str, holder: str) -> None:
        """Release the lock if it is still ours (it may have expired and been taken)."""
        try:
            await self.redis.eval(_RELEASE_LOCK, 1, self.lock_key(client_id), holder)
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(detail=f"cimd fetch unlock: {type(exc).__name__}") from exc


_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
