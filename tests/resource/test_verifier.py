"""The Python verifier for MCP servers: JWKS discovered from the facade's metadata, cached, refetched on
an unknown `kid` without letting a flood of made-up kids hammer the facade, and the SDK's `AccessToken`
built from a valid token."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from joserfc import jws
from mcp.server.auth.provider import AccessToken, TokenVerifier

from proxy.keys.keyset import Keyset, generate
from proxy.resource.verifier import FacadeTokenVerifier, KeysUnavailable, metadata_urls
from tests.conftest import Facade, free_port
from tests.resource.tokens import ISSUER, RESOURCE, Minter, make_minter, segments

ServerFactory = Callable[..., Awaitable[TestServer]]


class JwksHost:
    """A JWKS endpoint whose keys a test changes (rotation), counting the requests it answers."""

    def __init__(self, keyset: Keyset) -> None:
        self.document: dict[str, Any] = keyset.public_jwks
        self.requests = 0
        self.app = web.Application()
        self.app.router.add_get("/jwks", self.serve)

    async def serve(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.json_response(self.document)


async def jwks_host(aiohttp_server: ServerFactory, keyset: Keyset) -> tuple[JwksHost, str]:
    host = JwksHost(keyset)
    server = await aiohttp_server(host.app)
    return host, str(server.make_url("/jwks"))


async def test_the_verifier_discovers_the_facades_jwks_and_accepts_its_token(facade: Facade) -> None:
    """Given only the issuer and the resource, the verifier finds /jwks through the facade's RFC 8414
    metadata and turns a token from a real sign-in into the SDK's AccessToken; the JWKS is fetched once."""
    client = facade.client()
    body = await client.signed_in()
    verifier = FacadeTokenVerifier(issuer=facade.url, resource=facade.url + "/mcp")
    as_sdk_protocol: TokenVerifier = verifier  # the SDK's Protocol (not runtime-checkable): a type check
    token = await as_sdk_protocol.verify_token(body["access_token"])
    assert isinstance(token, AccessToken)
    claims = segments(body["access_token"])[1]
    assert token.token == body["access_token"] and token.client_id == client.client_id
    assert token.scopes == body["scope"].split() and token.resource == facade.url + "/mcp"
    assert token.subject == claims["sub"] and token.expires_at == claims["exp"]
    assert token.claims is not None and token.claims["sid"] == claims["sid"]
    assert await verifier.verify_token(body["access_token"]) is not None
    assert verifier.jwks_fetches == 1
    assert verifier.resource_metadata_url == facade.url + "/.well-known/oauth-protected-resource/mcp"


async def test_the_verifier_answers_none_for_any_invalid_token(facade: Facade) -> None:
    """Bad tokens are None (the SDK answers 401): garbage, a token for another resource, another issuer."""
    body = await facade.client().signed_in()
    for resource, issuer, token in [
        (facade.url + "/mcp", facade.url, "not-a-jwt"),
        (facade.url + "/other", facade.url, body["access_token"]),
    ]:
        assert await FacadeTokenVerifier(issuer=issuer, resource=resource).verify_token(token) is None
    verifier = FacadeTokenVerifier(issuer=facade.url, resource=facade.url + "/mcp",
                                   jwks_uri=facade.url + "/jwks")
    assert await verifier.verify_token(make_minter().mint(resource=facade.url + "/mcp")) is None


async def test_metadata_naming_another_issuer_is_not_believed(facade: Facade) -> None:
    """RFC 8414 §3.3: metadata whose `issuer` differs (here: a trailing slash) is not used for keys."""
    verifier = FacadeTokenVerifier(issuer=facade.url + "/", resource=facade.url + "/mcp")
    with pytest.raises(KeysUnavailable, match="issuer"):
        await verifier.verify_token((await facade.client().signed_in())["access_token"])


async def test_a_rotated_key_is_picked_up_on_its_first_token(aiohttp_server: ServerFactory) -> None:
    """After `keys rotate`, the first token signed by the new key makes the verifier refetch the JWKS
    once and accept it; tokens of the old key (still published) keep passing without a fetch."""
    old = make_minter("RS256")
    host, uri = await jwks_host(aiohttp_server, old.keyset)
    verifier = FacadeTokenVerifier(issuer=ISSUER, resource=RESOURCE, jwks_uri=uri, refetch_interval_s=0)
    assert await verifier.verify_token(old.mint()) is not None
    rotated = Minter(old.settings, Keyset([generate("ES256"), *old.keyset.keys]))
    host.document = rotated.keyset.public_jwks
    assert await verifier.verify_token(rotated.mint()) is not None
    assert host.requests == 2
    assert await verifier.verify_token(old.mint()) is not None
    assert host.requests == 2


async def test_a_flood_of_unknown_kids_costs_at_most_one_jwks_request(aiohttp_server: ServerFactory) -> None:
    """200 concurrent tokens with made-up kids are all refused: the first flood costs only the initial
    load (a refetch so soon after it is rate-limited); once `refetch_interval_s` has passed, a second flood
    costs exactly one refetch, shared by every request waiting on it."""
    minter = make_minter("RS256")
    host, uri = await jwks_host(aiohttp_server, minter.keyset)
    verifier = FacadeTokenVerifier(issuer=ISSUER, resource=RESOURCE, jwks_uri=uri, refetch_interval_s=60)
    _, claims = segments(minter.mint())

    def forged(n: int) -> str:
        header = {"alg": "RS256", "kid": f"made-up-{n}", "typ": "at+jwt"}
        return jws.serialize_compact(header, json.dumps(claims), minter.keyset.active.key)

    async def flood(first: int) -> None:
        results = await asyncio.gather(*(verifier.verify_token(forged(first + n)) for n in range(200)))
        assert results == [None] * 200

    await flood(0)
    assert host.requests == 1
    verifier.refetch_interval_s = 0  # as if the interval had passed, without waiting for it
    await flood(200)
    assert host.requests == 2
    assert await verifier.verify_token(minter.mint()) is not None and host.requests == 2


async def test_keys_older_than_their_max_age_are_refetched(aiohttp_server: ServerFactory) -> None:
    """A key removed from the JWKS stops being accepted once the cache is older than `max_keys_age_s`."""
    old = make_minter("RS256")
    host, uri = await jwks_host(aiohttp_server, old.keyset)
    verifier = FacadeTokenVerifier(issuer=ISSUER, resource=RESOURCE, jwks_uri=uri, max_keys_age_s=0,
                                   refetch_interval_s=0)
    token = old.mint()
    assert await verifier.verify_token(token) is not None
    host.document = Keyset([generate("RS256")]).public_jwks  # the old key is retired
    assert await verifier.verify_token(token) is None
    assert host.requests == 3  # the load, the refresh by age, the refetch for the now-unknown kid


async def test_an_unreachable_facade_is_keys_unavailable_then_recovers(aiohttp_server: ServerFactory) -> None:
    """With no JWKS yet and the facade down, the verifier raises KeysUnavailable (not None, which clients
    read as "sign in again"); once the JWKS answers, the same token verifies. A JWKS that goes away later
    leaves the cached keys in use."""
    minter = make_minter("RS256")
    port = free_port()
    verifier = FacadeTokenVerifier(issuer=ISSUER, resource=RESOURCE, jwks_uri=f"http://127.0.0.1:{port}/jwks",
                                   refetch_interval_s=0, max_keys_age_s=0)
    token = minter.mint()
    with pytest.raises(KeysUnavailable):
        await verifier.verify_token(token)
    host = JwksHost(minter.keyset)
    server = await aiohttp_server(host.app, port=port)
    assert await verifier.verify_token(token) is not None
    await server.close()
    assert await verifier.verify_token(token) is not None  # stale keys beat no keys


def test_metadata_urls_follow_the_mcp_discovery_order() -> None:
    """RFC 8414 path insertion first, then OIDC path insertion, then OIDC path appending."""
    assert metadata_urls("https://a.example") == [
        "https://a.example/.well-known/oauth-authorization-server",
        "https://a.example/.well-known/openid-configuration"]
    assert metadata_urls("https://a.example/tenant/") == [
        "https://a.example/.well-known/oauth-authorization-server/tenant",
        "https://a.example/.well-known/openid-configuration/tenant",
        "https://a.example/tenant/.well-known/openid-configuration"]


def test_the_resource_modules_import_without_the_mcp_sdk() -> None:
    """The facade does not depend on `mcp`: core, verifier and asgi import with the SDK made unimportable."""
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'mcp' or name.startswith('mcp.'):\n"
        "            raise ImportError('mcp is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import proxy.resource.core, proxy.resource.verifier, proxy.resource.asgi\n"
        "assert not any(m == 'mcp' or m.startswith('mcp.') for m in sys.modules)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.stdout.strip() == "ok", result.stderr
