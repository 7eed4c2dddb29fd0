"""POST /register (RFC 7591): 201, always a public client, validated redirect URIs, no nulls."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.conftest import Facade
from tests.helpers import assert_unchanged, stored_state


async def post(facade: Facade, body: Any, *, raw: bytes | None = None) -> tuple[int, dict[str, Any], Any]:
    kwargs: dict[str, Any] = {"data": raw, "headers": {"Content-Type": "application/json"}} if raw is not None \
        else {"json": body}
    async with facade.http.post(facade.url + "/register", **kwargs) as response:
        return response.status, await response.json(content_type=None), response


@pytest.mark.parametrize("method", [None, "none", "client_secret_post", "client_secret_basic", "private_key_jwt"])
async def test_every_client_is_public_whatever_it_asked(facade: Facade, method: str | None) -> None:
    """claude.ai asks client_secret_post, RFC 7591's default is Basic: the answer is none, no secret."""
    body: dict[str, Any] = {"redirect_uris": ["https://claude.ai/api/mcp/auth_callback"]}
    if method:
        body["token_endpoint_auth_method"] = method
    status, document, response = await post(facade, body)
    assert status == 201
    assert response.content_type == "application/json"
    assert document["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in document and "client_secret_expires_at" not in document


async def test_response_echoes_the_registration_without_nulls(facade: Facade) -> None:
    """RFC 7591 §3.2.1: the 201 answer echoes the accepted metadata with client_id_issued_at, and omits
    members sent as null instead of echoing null."""
    uris = ["http://localhost:8787/callback", "https://app.example.com/cb"]
    status, document, _ = await post(facade, {
        "redirect_uris": uris, "client_name": "Claude Code", "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"], "scope": "openid offline_access", "application_type": "native",
        "client_uri": None})
    assert status == 201
    assert document["redirect_uris"] == uris
    assert document["client_name"] == "Claude Code"
    assert document["grant_types"] == ["authorization_code", "refresh_token"]
    assert document["response_types"] == ["code"]
    assert document["scope"] == "openid offline_access"
    assert document["application_type"] == "native"
    assert isinstance(document["client_id_issued_at"], int)
    assert None not in document.values()
    assert "client_uri" not in document


async def test_client_ids_are_unguessable_and_from_the_basic_safe_alphabet(facade: Facade) -> None:
    """client_ids are distinct, at least 32 characters of base64url, so they survive Basic encoding unescaped."""
    ids = {(await post(facade, {"redirect_uris": ["https://a.example/cb"]}))[1]["client_id"] for _ in range(5)}
    assert len(ids) == 5
    for client_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{32,}", client_id)


async def test_grants_scopes_and_response_types_are_reduced(facade: Facade) -> None:
    """RFC 7591 §3.2.1: asked-for grant types, response types and scopes the facade does not support are
    dropped from what is registered."""
    status, document, _ = await post(facade, {
        "redirect_uris": ["https://a.example/cb"], "grant_types": ["implicit", "authorization_code", "password"],
        "response_types": ["code", "token"], "scope": "openid admin offline_access"})
    assert status == 201
    assert document["grant_types"] == ["authorization_code"]
    assert document["response_types"] == ["code"]
    assert document["scope"] == "openid offline_access"


async def test_cursors_three_uris_register_together(facade: Facade) -> None:
    """Cursor's real registration (a private-use URI, an https URI, a loopback URI) is accepted as a whole, in
    order."""
    uris = ["cursor://anysphere.cursor-mcp/oauth/callback", "https://www.cursor.com/agents/mcp/oauth/callback",
            "http://localhost:8787/callback"]
    status, document, _ = await post(facade, {"redirect_uris": uris})
    assert status == 201
    assert document["redirect_uris"] == uris


@pytest.mark.parametrize("uri", [
    "http://127.0.0.1/", "http://[::1]:33418/", "http://localhost:3000/cb", "com.example.app:/oauth2redirect",
    "https://vscode.dev/redirect",
])
async def test_acceptable_redirect_uris(facade: Facade, uri: str) -> None:
    """Loopback (IPv4, IPv6, localhost), private-use with a dotted scheme and https redirect URIs are accepted
    (RFC 8252 §7, RFC 9700 §2.1)."""
    assert (await post(facade, {"redirect_uris": [uri]}))[0] == 201


@pytest.mark.parametrize("uri", [
    "http://app.example.com/cb",          # http off loopback
    "https://app.example.com/cb#frag",    # fragment
    "https://*.example.com/cb",           # wildcard
    "https://user:pw@app.example.com/cb",  # userinfo
    "myapp:/cb",                          # private-use scheme without a dot
    "/relative/cb",
    "",
])
async def test_unacceptable_redirect_uris_are_invalid_redirect_uri(facade: Facade, uri: str) -> None:
    """RFC 7591 §3.2.2: http off loopback, fragments, wildcards, userinfo, dotless private-use schemes,
    relative and empty URIs are invalid_redirect_uri with a description, and nothing is stored."""
    before = await stored_state(facade.redis)
    status, document, _ = await post(facade, {"redirect_uris": ["https://ok.example/cb", uri]})
    assert status == 400
    assert document["error"] == "invalid_redirect_uri"
    assert document["error_description"]
    assert_unchanged(before, await stored_state(facade.redis))


async def test_missing_redirect_uris_is_invalid_redirect_uri(facade: Facade) -> None:
    """RFC 7591 §2: redirect_uris is required for the code grant; without it the answer is
    invalid_redirect_uri."""
    status, document, _ = await post(facade, {"client_name": "x"})
    assert (status, document["error"]) == (400, "invalid_redirect_uri")


@pytest.mark.parametrize("raw", [b"not json", b"[1,2]", b"\xff\xfe", b'{"redirect_uris": "https://a/cb"}'])
async def test_bad_bodies_are_invalid_client_metadata_or_redirect(facade: Facade, raw: bytes) -> None:
    """RFC 7591 §3.2.2: a body that is not a JSON object, not UTF-8, or mistypes redirect_uris is a 400 with a
    registration error code."""
    status, document, _ = await post(facade, None, raw=raw)
    assert status == 400
    assert document["error"] in {"invalid_client_metadata", "invalid_redirect_uri"}


async def test_registration_is_stored_with_a_ttl(facade: Facade) -> None:
    """A registration is stored under its client_id with PROXY_CLIENT_TTL_S (30 days by default)."""
    _, document, _ = await post(facade, {"redirect_uris": ["https://a.example/cb"]})
    key = f"oauthfacade:client:{document['client_id']}"
    assert json.loads(await facade.redis.get(key))["redirect_uris"] == ["https://a.example/cb"]
    ttl = await facade.redis.ttl(key)
    assert 86400 - 5 < ttl <= 86400  # PROXY_UNUSED_CLIENT_TTL_S until its first sign-in (issue 14 item 6)


async def test_using_a_registration_renews_its_lifetime(facade: Facade) -> None:
    """Once used for a sign-in, every use renews it (an unused one is not: issue 14 item 6)."""
    client = facade.client()
    await client.signed_in()
    key = f"oauthfacade:client:{client.client_id}"
    await facade.redis.expire(key, 2 * 86400)
    await client.authorize()
    assert await facade.redis.ttl(key) > 2 * 86400
