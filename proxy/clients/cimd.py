"""Resolve a URL client_id to its validated document: cache first, then one guarded fetch.

Single flight (issue 23): concurrent /authorize requests for a document that is missing or past its
freshness fetch it once. In one process they share one fetch; across replicas a short lock in Redis
lets one fetch while the others wait for the cache it fills (up to the fetch timeout, then they fetch
themselves, so a replica that died holding the lock costs a delay, never an error).

Called by /authorize only. What a grant needs (name, redirect URIs, digest) travels with the
transaction, the code and the refresh family, so /callback, /token and refresh never fetch: a
document host's outage can never turn a refresh into `invalid_client` (which makes the TypeScript
SDK throw its credentials away).
"""

from __future__ import annotations

import asyncio
import fnmatch
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from proxy.clients.cache import CachedDocument, DocumentCache, freshness
from proxy.clients.document import ClientDocument, DocumentInvalid, url_problem, validate
from proxy.clients.fetch import Fetcher, FetchFailed, FetchRefused
from proxy.errors import ClientDocumentUnusable
from proxy.log import get_logger
from proxy.metrics import cimd_outcome

log = get_logger()
LOCK_POLL_S = 0.05


@dataclass
class CimdResolver:
    cache: DocumentCache
    fetcher: Fetcher
    allowed_hosts: tuple[str, ...] = ()  # operator's patterns; empty: any host
    floor_s: int = 300
    ceiling_s: int = 86400
    default_s: int = 3600
    stale_s: int = 21600
    _flights: dict[str, asyncio.Future[ClientDocument]] = field(default_factory=dict, init=False, repr=False)

    def host_allowed(self, host: str) -> bool:
        return not self.allowed_hosts or any(fnmatch.fnmatchcase(host, pattern) for pattern in self.allowed_hosts)

    async def resolve(self, client_id: str) -> ClientDocument:
        """The document for `client_id`; ClientDocumentUnusable (an HTML page at /authorize) otherwise."""
        problem = url_problem(client_id)
        if problem is not None:
            cimd_outcome("refused")
            raise ClientDocumentUnusable(f"The client_id URL {problem}.")
        host = (urlsplit(client_id).hostname or "").lower()
        if not self.host_allowed(host):
            cimd_outcome("refused")
            raise ClientDocumentUnusable(f"Clients from {host} are not accepted by this server.")
        cached = await self.cache.get(client_id)
        now = time.time()
        if cached is not None and now < cached.fresh_until:
            cimd_outcome("cached")
            return cached.document
        flight = self._flights.get(client_id)
        if flight is None:
            flight = asyncio.ensure_future(self._fetch_once(client_id, host, cached))
            self._flights[client_id] = flight
            flight.add_done_callback(lambda _: self._flights.pop(client_id, None))
        return await asyncio.shield(flight)  # a waiter that gives up does not cancel the others' fetch

    async def _fetch_once(self, client_id: str, host: str, cached: CachedDocument | None) -> ClientDocument:
        """Fetch under the cross-replica lock; or take what the replica holding it put in the cache."""
        holder = secrets.token_urlsafe(12)
        wait_s = self.fetcher.timeout_s + 1
        if not await self.cache.lock_fetch(client_id, holder, int(wait_s * 1000)):
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                await asyncio.sleep(LOCK_POLL_S)
                fresh = await self.cache.get(client_id)
                if fresh is not None and time.time() < fresh.fresh_until:
                    cimd_outcome("cached")
                    return fresh.document
            # The holder did not fill the cache in time (it failed, or died): fetch here.
        try:
            return await self._fetch(client_id, host, cached)
        finally:
            await self.cache.unlock_fetch(client_id, holder)

    async def _fetch(self, client_id: str, host: str, cached: CachedDocument | None) -> ClientDocument:
        now = time.time()
        try:
            fetched = await self.fetcher.fetch(client_id)
        except FetchRefused as exc:
            cimd_outcome("refused")
            log.warning("cimd.refused", host=host, reason=str(exc))
            raise ClientDocumentUnusable(f"The client metadata document at {host} may not be fetched: {exc}.") from exc
        except FetchFailed as exc:
            if exc.transient and cached is not None and now < cached.stale_until:
                cimd_outcome("stale")
                log.warning("cimd.stale", host=host, reason=str(exc))
                return cached.document
            cimd_outcome("failed")
            log.warning("cimd.failed", host=host, reason=str(exc))
            raise ClientDocumentUnusable(
                f"The client metadata document at {host} could not be fetched: {exc}.") from exc
        try:
            document = validate(client_id, fetched.body)
        except DocumentInvalid as exc:
            cimd_outcome("failed")
            log.warning("cimd.invalid", host=host, reason=str(exc))
            if cached is not None:
                await self.cache.forget(client_id)  # the host now serves something invalid: drop the old copy
            raise ClientDocumentUnusable(f"The client metadata document at {host} is invalid: {exc}.") from exc
        fresh = freshness(fetched.cache_control, fetched.expires, fetched.date, now=now, default_s=self.default_s)
        if fresh is None:
            if cached is not None:
                await self.cache.forget(client_id)
        else:
            await self.cache.put(document, fresh_s=min(max(fresh, self.floor_s), self.ceiling_s),
                                 stale_s=self.stale_s)
        cimd_outcome("ok")
        log.info("cimd.fetched", host=host)
        return document
