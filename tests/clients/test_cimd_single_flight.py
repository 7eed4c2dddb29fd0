"""Concurrent /authorize requests for a document that expired fetch it once (issue 23 item 4).

Within one process the look-ups share one fetch; across replicas (two resolvers on one Redis, as two
facade processes are) a lock in Redis lets one fetch while the other waits for the cache it fills.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from proxy.clients.cache import DocumentCache
from tests.clients.conftest import DocumentHost
from tests.clients.test_cimd_cache import PREFIX, make_resolver


async def expire(redis: Any, url: str) -> None:
    """Make the cached copy stale (past its freshness, within its stale window), as time would."""
    key = DocumentCache(redis, PREFIX).key(url)
    entry = json.loads(await redis.get(key))
    entry["fresh_until"] = time.time() - 1
    await redis.set(key, json.dumps(entry), ex=600)


async def test_concurrent_look_ups_of_an_expired_document_fetch_it_once(doc_host: DocumentHost,
                                                                         redis_client: Any) -> None:
    """Twenty look-ups at once in one process, the host slow to answer: one fetch, one document."""
    url = doc_host.serve("/c.json", delay_s=0.3)
    resolver = make_resolver(doc_host, redis_client)
    await resolver.resolve(url)
    await expire(redis_client, url)
    documents = await asyncio.gather(*(resolver.resolve(url) for _ in range(20)))
    assert len(doc_host.hits) == 2
    assert {document.client_name for document in documents} == {"Test CLI"}


async def test_replicas_sharing_redis_fetch_an_expired_document_once(doc_host: DocumentHost,
                                                                     redis_client: Any) -> None:
    """Three replicas (resolvers) look the expired document up at once: one fetch in all."""
    url = doc_host.serve("/c.json", delay_s=0.3)
    replicas = [make_resolver(doc_host, redis_client) for _ in range(3)]
    await replicas[0].resolve(url)
    await expire(redis_client, url)
    documents = await asyncio.gather(*(replica.resolve(url) for replica in replicas for _ in range(3)))
    assert len(doc_host.hits) == 2
    assert len(documents) == 9


async def test_a_waiting_replica_fetches_itself_when_the_lock_holder_never_fills_the_cache(
        doc_host: DocumentHost, redis_client: Any) -> None:
    """A lock left by a replica that died mid-fetch delays the others by at most the fetch timeout;
    they then fetch themselves and answer."""
    url = doc_host.serve("/c.json")
    resolver = make_resolver(doc_host, redis_client)
    assert await resolver.cache.lock_fetch(url, "a replica that died", 60_000)
    started = time.monotonic()
    document = await resolver.resolve(url)
    assert document.client_name == "Test CLI" and len(doc_host.hits) == 1
    assert time.monotonic() - started < resolver.fetcher.timeout_s + 2
