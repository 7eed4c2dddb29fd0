"""Resolution through the shared Redis cache: HTTP caching honoured within bounds, failures and invalid
documents never cached, a bounded stale window, host patterns, and outcome metrics without URLs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import REGISTRY

from proxy.clients.cache import DocumentCache, freshness
from proxy.clients.cimd import CimdResolver
from proxy.clients.fetch import Fetcher
from proxy.errors import ClientDocumentUnusable
from tests.clients.conftest import DOC_HOST, DocumentHost, ScriptedResolver

PREFIX = "oauthfacade:"


def make_resolver(doc_host: DocumentHost, redis: Any, **bounds: Any) -> CimdResolver:
    fetcher = Fetcher(timeout_s=2, ca_file=doc_host.pki.ca_file, dev_hosts=(DOC_HOST,),
                      resolve=ScriptedResolver({DOC_HOST: ["127.0.0.1"]}))
    values: dict[str, Any] = {"floor_s": 60, "ceiling_s": 3600, "default_s": 600, "stale_s": 900}
    values.update(bounds)
    return CimdResolver(DocumentCache(redis, PREFIX), fetcher, **values)


def outcome(name: str) -> float:
    return REGISTRY.get_sample_value("oauth_facade_cimd_documents_total", {"outcome": name}) or 0.0


async def cached_ttl(redis: Any, url: str) -> int:
    return int(await redis.ttl(DocumentCache(redis, PREFIX).key(url)))


async def test_document_is_cached_for_its_max_age_plus_the_stale_window(doc_host: DocumentHost,
                                                                        redis_client: Any) -> None:
    """Cache-Control: max-age=1200 → one fetch serves later look-ups; the key lives 1200 + 900 s."""
    url = doc_host.serve("/c.json", headers={"Content-Type": "application/json", "Cache-Control": "max-age=1200"})
    resolver = make_resolver(doc_host, redis_client)
    before_ok, before_cached = outcome("ok"), outcome("cached")
    first = await resolver.resolve(url)
    second = await resolver.resolve(url)
    assert first == second and first.client_name == "Test CLI"
    assert len(doc_host.hits) == 1
    assert 2090 <= await cached_ttl(redis_client, url) <= 2100
    assert outcome("ok") == before_ok + 1 and outcome("cached") == before_cached + 1


@pytest.mark.parametrize(("headers", "expected_fresh"), [
    ({"Cache-Control": "max-age=5"}, 60),  # below the floor → floor
    ({"Cache-Control": "max-age=999999"}, 3600),  # above the ceiling → ceiling
    ({"Cache-Control": "no-cache"}, 60),
    ({"Cache-Control": "public, s-maxage=1800, max-age=10"}, 1800),  # a shared cache reads s-maxage
    ({}, 600),  # no caching headers → the default
    ({"Expires": "Thu, 01 Jan 1970 00:00:00 GMT"}, 60),
])
async def test_cache_lifetime_is_bounded(headers: dict[str, str], expected_fresh: int, doc_host: DocumentHost,
                                         redis_client: Any) -> None:
    """The host's caching headers apply, clamped to the floor and ceiling (draft §5.2 MAY bound)."""
    url = doc_host.serve("/c.json", headers={"Content-Type": "application/json", **headers})
    await make_resolver(doc_host, redis_client).resolve(url)
    ttl = await cached_ttl(redis_client, url)
    assert expected_fresh + 900 - 10 <= ttl <= expected_fresh + 900


def test_expires_is_read_against_the_origin_date() -> None:
    """RFC 9111 §4.2.1: Expires minus Date, so a host with a skewed clock still gets its lifetime."""
    fresh = freshness(None, "Tue, 01 Dec 2026 01:00:00 GMT", "Tue, 01 Dec 2026 00:00:00 GMT", now=0, default_s=1)
    assert fresh == 3600


async def test_no_store_is_never_cached(doc_host: DocumentHost, redis_client: Any) -> None:
    """Cache-Control: no-store → every look-up fetches, nothing is written to Redis."""
    url = doc_host.serve("/c.json", headers={"Content-Type": "application/json", "Cache-Control": "no-store"})
    resolver = make_resolver(doc_host, redis_client)
    await resolver.resolve(url)
    await resolver.resolve(url)
    assert len(doc_host.hits) == 2
    assert await redis_client.keys("*") == []


@pytest.mark.parametrize("status", [404, 500])
async def test_failures_are_not_cached(status: int, doc_host: DocumentHost, redis_client: Any) -> None:
    """§5.2 MUST NOT cache error responses: each look-up asks again, Redis stays empty."""
    url = doc_host.serve("/c.json", status=status, headers={"Content-Type": "application/json",
                                                            "Cache-Control": "max-age=3600"})
    resolver = make_resolver(doc_host, redis_client)
    for _ in range(2):
        with pytest.raises(ClientDocumentUnusable):
            await resolver.resolve(url)
    assert len(doc_host.hits) == 2
    assert await redis_client.keys("*") == []


async def test_invalid_document_is_not_cached_and_drops_an_older_copy(doc_host: DocumentHost,
                                                                      redis_client: Any) -> None:
    """§5.2 MUST NOT cache invalid documents; an invalid refetch also removes the previous valid copy."""
    url = doc_host.serve("/c.json", headers={"Content-Type": "application/json", "Cache-Control": "max-age=0"})
    resolver = make_resolver(doc_host, redis_client, floor_s=0)
    await resolver.resolve(url)
    assert await redis_client.keys("*") != []
    doc_host.serve("/c.json", {"client_id": url, "client_name": "X", "redirect_uris": ["http://localhost/cb"],
                               "client_secret": "leaked"})
    before = outcome("failed")
    with pytest.raises(ClientDocumentUnusable, match="client_secret"):
        await resolver.resolve(url)
    assert await redis_client.keys("*") == []
    assert outcome("failed") == before + 1


async def test_stale_copy_bridges_an_outage_within_the_window(doc_host: DocumentHost, redis_client: Any) -> None:
    """A refetch that fails transiently (host down: 503) serves the cached copy while the stale window
    lasts, and the metric says `stale`."""
    url = doc_host.serve("/c.json", headers={"Content-Type": "application/json", "Cache-Control": "max-age=0"})
    resolver = make_resolver(doc_host, redis_client, floor_s=0, stale_s=900)
    document = await resolver.resolve(url)
    doc_host.down = True
    before = outcome("stale")
    assert await resolver.resolve(url) == document
    assert outcome("stale") == before + 1
    assert len(doc_host.hits) == 2


async def test_past_the_stale_window_the_outage_fails(doc_host: DocumentHost, redis_client: Any) -> None:
    """Once the stale window is over, a down host means the look-up fails (never an unverified client)."""
    url = doc_host.serve("/c.json", headers={"Content-Type": "application/json", "Cache-Control": "max-age=0"})
    resolver = make_resolver(doc_host, redis_client, floor_s=0, stale_s=900)
    await resolver.resolve(url)
    key = DocumentCache(redis_client, PREFIX).key(url)
    entry = json.loads(await redis_client.get(key))
    entry["stale_until"] = entry["fresh_until"] = 1.0  # the window ended long ago (the key outlives it here)
    await redis_client.set(key, json.dumps(entry), ex=60)
    doc_host.down = True
    with pytest.raises(ClientDocumentUnusable, match="could not be fetched"):
        await resolver.resolve(url)


async def test_removed_document_is_not_bridged_by_the_stale_copy(doc_host: DocumentHost, redis_client: Any) -> None:
    """404 is the host's verdict, not an outage: the stale copy does not serve."""
    url = doc_host.serve("/c.json", headers={"Content-Type": "application/json", "Cache-Control": "max-age=0"})
    resolver = make_resolver(doc_host, redis_client, floor_s=0)
    await resolver.resolve(url)
    del doc_host.answers["/c.json"]
    with pytest.raises(ClientDocumentUnusable):
        await resolver.resolve(url)


async def test_operator_host_patterns_refuse_other_hosts_without_fetching(doc_host: DocumentHost,
                                                                          redis_client: Any) -> None:
    """PROXY_CIMD_ALLOWED_HOSTS: a URL on another host is refused before any request."""
    url = doc_host.serve("/c.json")
    resolver = make_resolver(doc_host, redis_client, allowed_hosts=("claude.ai", "*.vscode.dev"))
    before = outcome("refused")
    with pytest.raises(ClientDocumentUnusable, match="not accepted"):
        await resolver.resolve(url)
    assert doc_host.hits == [] and outcome("refused") == before + 1
    allowed = make_resolver(doc_host, redis_client, allowed_hosts=("*.test",))
    assert (await allowed.resolve(url)).client_id == url


async def test_two_facades_share_one_cached_document_on_redis_server(doc_host: DocumentHost,
                                                                     redis_server: Any) -> None:
    """Two resolvers with their own Redis connections (two replicas) fetch the document once between them."""
    import redis.asyncio as aioredis

    first_redis = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    second_redis = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        await first_redis.flushdb()
        url = doc_host.serve("/shared.json")
        assert (await make_resolver(doc_host, first_redis).resolve(url)).client_id == url
        assert (await make_resolver(doc_host, second_redis).resolve(url)).client_id == url
        assert len(doc_host.hits) == 1
    finally:
        await first_redis.aclose()
        await second_redis.aclose()


def test_metric_labels_never_carry_the_url() -> None:
    """The outcome counter has one label, `outcome`, from a fixed vocabulary."""
    for metric in REGISTRY.collect():
        if metric.name == "oauth_facade_cimd_documents":
            for sample in metric.samples:
                assert set(sample.labels) == {"outcome"}
                assert sample.labels["outcome"] in {"ok", "cached", "stale", "refused", "failed"}
