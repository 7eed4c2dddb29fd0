"""Resolve a URL client_id to its validated document: cache first, then one guarded fetch.

Called by /authorize only. What a grant needs (name, redirect URIs, digest) travels with the
transaction, the code and the refresh family, so /callback, /token and refresh never fetch: a
document host's outage can never turn a refresh into `invalid_client` (which makes the TypeScript
SDK throw its credentials away).
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from proxy.clients.cache import DocumentCache, freshness
from proxy.clients.document import ClientDocument, DocumentInvalid, url_problem, validate
from proxy.clients.fetch import Fetcher, FetchFailed, FetchRefused
from proxy.errors import ClientDocumentUnusable
from proxy.log import get_logger
from proxy.metrics import cimd_outcome

log = get_logger()


@dataclass
class CimdResolver:
    cache: DocumentCache
    fetcher: Fetcher
    allowed_hosts: tuple[str, ...] = ()  # operator's patterns; empty: any host
    floor_s: int = 300
    ceiling_s: int = 86400
    default_s: int = 3600
    stale_s: int = 21600

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
