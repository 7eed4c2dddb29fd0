"""Tokens the facade did not issue, or issued for something else, are refused at /userinfo and
/introspect (RFC 8725 §2.1/§3.1/§3.10/§3.11, RFC 9068 §4, RFC 6750 §2-§3, MCP "Token Passthrough")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from aiohttp import web
from joserfc import jwk, jws

from tests.conftest import Facade, FacadeFactory

SECRET = "introspection-credential"


def b64(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


@pytest.fixture
async def rs_facade(make_facade: FacadeFactory) -> Facade:
    return await make_facade(introspection_secret=SECRET)


async def signed_in(facade: Facade) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    client = facade.client()
    body = await client.signed_in()
    header = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[0] + "=="))
    claims = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[1] + "=="))
    return body, header, claims


async def refused(facade: Facade, token: str) -> None:
    async with facade.http.get(facade.url + "/userinfo", headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 401
        assert (await response.json())["error"] == "invalid_token"
        assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    async with facade.http.post(facade.url + "/introspect", data={"token": token},
                                headers={"Authorization": f"Bearer {SECRET}"}) as response:
        assert response.status == 200
        assert await response.json() == {"active": False}


async def test_the_genuine_token_is_accepted(rs_facade: Facade) -> None:
    """The control for every case below: the token as issued works at both endpoints."""
    body, _, _ = await signed_in(rs_facade)
    async with rs_facade.http.get(rs_facade.url + "/userinfo",
                                  headers={"Authorization": f"Bearer {body['access_token']}"}) as response:
        assert response.status == 200


async def test_alg_none_is_refused(rs_facade: Facade) -> None:
    """RFC 8725 §3.1/§3.2: an unsigned token with the genuine claims is not a token."""
    _, header, claims = await signed_in(rs_facade)
    await refused(rs_facade, compact({**header, "alg": "none"}, claims))
    await refused(rs_facade, compact({**header, "alg": "None"}, claims))


async def test_hs256_keyed_with_the_public_key_is_refused(rs_facade: Facade) -> None:
    """RFC 8725 §2.1 (CVE-2022-29217, CVE-2015-9235): the public key as an HMAC secret proves nothing."""
    _, header, claims = await signed_in(rs_facade)
    public = rs_facade.services.keyset.keys[0].public_jwk()
    pem = rs_facade.services.keyset.keys[0].key.as_pem(private=False)
    for secret in (pem, json.dumps(public).encode()):
        unsigned = compact({**header, "alg": "HS256"}, claims).rstrip(".")
        mac = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()  # what a confused verifier checks
        await refused(rs_facade, f"{unsigned}.{b64(mac)}")


async def test_key_header_injection_is_refused_and_fetches_nothing(rs_facade: Facade, aiohttp_server: Any) -> None:
    """RFC 8725 §3.10, CVE-2018-0114: an unknown kid, a path as kid, a jku/x5u to a listener or an
    embedded jwk is refused, and the listener never hears from the facade."""
    hits: list[str] = []

    async def listener(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"keys": []})

    app = web.Application()
    app.router.add_get("/{tail:.*}", listener)
    server = await aiohttp_server(app)
    _, header, claims = await signed_in(rs_facade)
    attacker = jwk.RSAKey.generate_key(2048, auto_kid=True)
    for extra in ({"kid": "unknown"}, {"kid": "../../dev/null"}, {"kid": "' OR 1=1 --"},
                  {"jku": str(server.make_url("/jwks"))}, {"x5u": str(server.make_url("/cert"))},
                  {"jwk": attacker.as_dict(private=False), "kid": attacker.kid}):
        token = jws.serialize_compact({**header, **extra}, json.dumps(claims), attacker)
        await refused(rs_facade, token)
    assert hits == []


@pytest.mark.parametrize(("case", "change"), [
    ("expired", {"exp": int(time.time()) - 10}),
    ("exp missing", {"exp": None}),
    ("exp not a number", {"exp": "9999999999"}),
    ("another issuer", {"iss": "https://evil.example"}),
])
async def test_a_token_with_wrong_claims_is_refused_even_with_our_signature(
        rs_facade: Facade, case: str, change: dict[str, Any]) -> None:
    """RFC 9068 §4, RFC 7519 §4.1.4: our own signature over wrong claims is still no token."""
    _, _, claims = await signed_in(rs_facade)
    changed = {**claims, **{k: v for k, v in change.items() if v is not None}}
    for name, value in change.items():
        if value is None:
            changed.pop(name)
    await refused(rs_facade, rs_facade.services.keyset.sign(changed, typ="at+jwt"))


async def test_an_id_token_is_not_an_access_token(rs_facade: Facade) -> None:
    """RFC 9068 §4 and RFC 8725 §3.11: the id_token (typ JWT, aud = the client) is refused as a Bearer."""
    body, _, _ = await signed_in(rs_facade)
    await refused(rs_facade, body["id_token"])


async def test_the_upstream_access_token_is_never_accepted(rs_facade: Facade) -> None:
    """MCP Security Best Practices "Token Passthrough": the IdP's own token is not the facade's."""
    await signed_in(rs_facade)
    for token in rs_facade.idp_state.access_tokens:
        await refused(rs_facade, token)


async def test_an_access_token_in_the_query_is_refused(rs_facade: Facade) -> None:
    """RFC 9700 §2.2 / OAuth 2.1: no access tokens in URLs."""
    body, _, _ = await signed_in(rs_facade)
    async with rs_facade.http.get(rs_facade.url + "/userinfo",
                                  params={"access_token": body["access_token"]}) as response:
        assert response.status == 401
        assert (await response.json())["error"] == "invalid_token"
