"""Key sets named by a client or an operator (proxy/clients/jwks.py): served over real TLS on 127.0.0.1,
fetched through the SSRF-pinned fetcher, cached in Redis (fakeredis and a real redis-server), refetched
once per interval when an unknown kid arrives; private or symmetric material is refused."""

from __future__ import annotations

import asyncio
import json
import warnings
from typing import Any

import pytest
from joserfc import jwk
from joserfc.errors import SecurityWarning

from proxy.clients.fetch import Fetcher
from proxy.clients.jwks import (
    KeySets,
    KeySetUnavailable,
    KeySetUnusable,
    KeySource,
    jwks_uri_problem,
    public_key_set,
)
from tests.clients.conftest import DOC_HOST, Answer, DocumentHost, ScriptedResolver


def rsa(kid: str) -> jwk.RSAKey:
    return jwk.generate_key("RSA", 2048, parameters={"kid": kid})


def short_rsa() -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        return jwk.generate_key("RSA", 1024).as_dict(private=False)


def jwks_of(*keys: Any, private: bool = False) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=private) for key in keys]}


def key_sets(doc_host: DocumentHost, redis: Any, *, refetch_s: int = 30, resolver: Any = None) -> KeySets:
    fetcher = Fetcher(timeout_s=2, dev_hosts=(DOC_HOST,), ca_file=doc_host.pki.ca_file,
                      resolve=resolver or ScriptedResolver({DOC_HOST: ["127.0.0.1"]}))
    return KeySets(redis, "t:", fetcher, cache_s=600, refetch_interval_s=refetch_s)


def serve_jwks(doc_host: DocumentHost, path: str, document: dict[str, Any]) -> str:
    doc_host.answers[path] = Answer(body=json.dumps(document).encode())
    return doc_host.url(path)


@pytest.mark.parametrize("member", [
    {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"},
    "private-rsa", "private-ec", "private-okp",
])
def test_private_or_symmetric_material_refuses_the_whole_set(member: Any) -> None:
    """A JWKS with a symmetric key, or any private member, is refused (not just that key skipped): a
    party that publishes its private key has no secret left to prove."""
    if member == "private-rsa":
        member = rsa("p").as_dict(private=True)
    elif member == "private-ec":
        member = jwk.generate_key("EC", "P-256").as_dict(private=True)
    elif member == "private-okp":
        member = jwk.generate_key("OKP", "Ed25519").as_dict(private=True)
    with pytest.raises(KeySetUnusable, match="private or symmetric"):
        public_key_set({"keys": [rsa("good").as_dict(private=False), member]})


def test_unusable_sets_are_refused_and_encryption_keys_skipped() -> None:
    """Not JSON, no keys array, only encryption keys, a short RSA key, too many keys: refused. An
    encryption key beside a signature key is skipped."""
    for bad in ("not json", {"keys": {}}, {"kid": "x"}, {"keys": [{**rsa("e").as_dict(private=False), "use": "enc"}]},
                {"keys": [short_rsa()]},
                {"keys": [rsa(str(n)).as_dict(private=False) for n in range(17)]}):
        with pytest.raises(KeySetUnusable):
            public_key_set(bad)
    kept = public_key_set({"keys": [{**rsa("e").as_dict(private=False), "use": "enc"}, rsa("s").as_dict()]})
    assert [key.kid for key in kept.keys] == ["s"]


@pytest.mark.parametrize(("url", "ok"), [
    ("https://chatgpt.com/oauth/abc/jwks.json", True), ("http://chatgpt.com/jwks", False),
    ("https://user@host/jwks", False), ("https:///jwks", False), ("https://h/j#frag", False), (42, False),
])
def test_jwks_uri_rules(url: Any, ok: bool) -> None:
    """https, a host, no userinfo or fragment: the fetcher checks the addresses when it fetches."""
    assert (jwks_uri_problem(url) is None) is ok


async def test_fetched_once_then_served_from_the_shared_cache(doc_host: DocumentHost, redis_client: Any) -> None:
    """The first use fetches; later ones (here a second KeySets, as another replica would be) read Redis."""
    key = rsa("k1")
    url = serve_jwks(doc_host, "/jwks.json", jwks_of(key))
    first = await key_sets(doc_host, redis_client).get(KeySource(uri=url), "k1")
    second = await key_sets(doc_host, redis_client).get(KeySource(uri=url), "k1")
    assert [k.kid for k in first.keys] == [k.kid for k in second.keys] == ["k1"]
    assert len(doc_host.hits) == 1
    cached = [name for name in await redis_client.keys("t:jwks:*")]
    assert len(cached) == 1 and 0 < await redis_client.ttl(cached[0]) <= 600
    assert '"d"' not in await redis_client.get(cached[0])


async def test_rotation_found_by_one_refetch_and_a_flood_of_unknown_kids_costs_one_fetch(
        doc_host: DocumentHost, redis_client: Any) -> None:
    """A kid the cached set lacks refetches (the rotated key is found); fifty made-up kids in a row,
    across two replicas, cost no further fetch within the interval."""
    url = serve_jwks(doc_host, "/jwks.json", jwks_of(rsa("old")))
    replica_a, replica_b = key_sets(doc_host, redis_client), key_sets(doc_host, redis_client)
    await replica_a.get(KeySource(uri=url), "old")
    await redis_client.delete("t:jwks-fetch:" + (await redis_client.keys("t:jwks:*"))[0].split(":")[-1])
    serve_jwks(doc_host, "/jwks.json", jwks_of(rsa("new"), rsa("old")))
    rotated = await replica_b.get(KeySource(uri=url), "new")
    assert {k.kid for k in rotated.keys} == {"new", "old"}
    assert len(doc_host.hits) == 2
    for n in range(50):
        got = await (replica_a if n % 2 else replica_b).get(KeySource(uri=url), f"made-up-{n}")
        assert {k.kid for k in got.keys} == {"new", "old"}
    assert len(doc_host.hits) == 2


async def test_unknown_kid_refetches_again_after_the_interval(doc_host: DocumentHost, redis_client: Any) -> None:
    """The gate is a short interval, not a ban: once it passes, the next unknown kid fetches again."""
    url = serve_jwks(doc_host, "/jwks.json", jwks_of(rsa("a")))
    sets = key_sets(doc_host, redis_client, refetch_s=1)
    await sets.get(KeySource(uri=url), "a")
    await sets.get(KeySource(uri=url), "b")
    assert len(doc_host.hits) == 1
    await asyncio.sleep(1.1)
    await sets.get(KeySource(uri=url), "b")
    assert len(doc_host.hits) == 2


async def test_concurrent_first_uses_share_one_fetch(doc_host: DocumentHost, redis_client: Any) -> None:
    """Twenty requests racing on a cold cache in one process make one request to the key host."""
    url = serve_jwks(doc_host, "/jwks.json", jwks_of(rsa("k")))
    doc_host.answers["/jwks.json"].delay_s = 0.2
    sets = key_sets(doc_host, redis_client)
    results = await asyncio.gather(*(sets.get(KeySource(uri=url), "k") for _ in range(20)))
    assert all([k.kid for k in r.keys] == ["k"] for r in results)
    assert len(doc_host.hits) == 1


async def test_failed_refetch_keeps_the_cached_set_and_a_cold_failure_is_unavailable(
        doc_host: DocumentHost, redis_client: Any) -> None:
    """The host goes down: a cached set still answers; with nothing cached the caller gets
    KeySetUnavailable (and a private-key set served by the host is KeySetUnusable, never cached)."""
    url = serve_jwks(doc_host, "/jwks.json", jwks_of(rsa("k")))
    sets = key_sets(doc_host, redis_client, refetch_s=1)
    await sets.get(KeySource(uri=url), "k")
    await asyncio.sleep(1.1)
    doc_host.down = True
    assert [k.kid for k in (await sets.get(KeySource(uri=url), "other")).keys] == ["k"]
    with pytest.raises(KeySetUnavailable):
        await sets.get(KeySource(uri=doc_host.url("/cold.json")))
    doc_host.down = False
    bad = serve_jwks(doc_host, "/private.json", jwks_of(rsa("p"), private=True))
    with pytest.raises(KeySetUnusable):
        await sets.get(KeySource(uri=bad))
    assert await redis_client.keys("t:jwks:*") == [(await redis_client.keys("t:jwks:*"))[0]]


async def test_jwks_uri_on_a_private_address_is_never_contacted(doc_host: DocumentHost, redis_client: Any) -> None:
    """The same SSRF rule as for metadata documents: a host that resolves to a special-use address (here
    loopback without the development exception) is refused before a byte is sent."""
    url = serve_jwks(doc_host, "/jwks.json", jwks_of(rsa("k")))
    fetcher = Fetcher(timeout_s=2, ca_file=doc_host.pki.ca_file, resolve=ScriptedResolver({DOC_HOST: ["127.0.0.1"]}))
    sets = KeySets(redis_client, "t:", fetcher)
    with pytest.raises(KeySetUnavailable, match="may not be fetched"):
        await sets.get(KeySource(uri=url), "k")
    assert doc_host.hits == []


async def test_oversized_key_set_is_refused(doc_host: DocumentHost, redis_client: Any) -> None:
    """A key host that streams more than the JWKS cap is cut off (the fetcher's size bound)."""
    doc_host.answers["/big.json"] = Answer(stream_kb=80)
    with pytest.raises(KeySetUnavailable, match="larger than"):
        await key_sets(doc_host, redis_client).get(KeySource(uri=doc_host.url("/big.json")))


async def test_inline_jwks_is_used_as_given(redis_client: Any, doc_host: DocumentHost) -> None:
    """An inline jwks never fetches."""
    key = rsa("inline")
    got = await key_sets(doc_host, redis_client).get(KeySource(inline=json.dumps(jwks_of(key))), "inline")
    assert [k.kid for k in got.keys] == ["inline"] and doc_host.hits == []
