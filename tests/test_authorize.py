"""GET /authorize and GET /callback: HTML before the redirect_uri is trusted, redirects after."""

from __future__ import annotations

import pytest

from tests.conftest import Facade
from tests.helpers import assert_unchanged, query_of, stored_state


async def assert_html_error(facade: Facade, path: str, needle: str) -> None:
    client = facade.client()
    response = await client.get(facade.url + path)
    assert response.status == 400
    assert "Location" not in response.headers
    assert response.content_type == "text/html"
    assert needle in await response.text()
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


async def test_loopback_redirect_matches_on_any_port(facade: Facade) -> None:
    """RFC 8252 §7.3: VS Code registers one port and uses another."""
    client = facade.client()
    client.redirect_uri = "http://127.0.0.1:33418/"
    await client.register()
    auth = await client.authorize(redirect_uri="http://127.0.0.1:51234/")
    assert auth.location.startswith("http://127.0.0.1:51234/?")
    status, _ = await client.exchange(auth)
    assert status == 200


async def test_loopback_port_freedom_does_not_extend_to_other_paths(facade: Facade) -> None:
    """RFC 8252 §7.3: only the port of a loopback redirect URI may vary; another path is refused with 400."""
    client = facade.client()
    client.redirect_uri = "http://127.0.0.1:33418/callback"
    await client.register()
    response, _ = await client.start(redirect_uri="http://127.0.0.1:9999/other")
    assert response.status == 400


async def test_redirect_uri_may_be_omitted_when_one_is_registered(facade: Facade) -> None:
    """RFC 6749 §3.1.2.3: a client with one registered redirect URI may omit it at /authorize and at /token;
    the code goes there and redeems."""
    client = facade.client()
    await client.register()
    response, auth = await client.start(redirect_uri=None)
    auth = await client.follow(response, auth)
    assert auth.location.startswith(client.redirect_uri)
    status, _ = await client.exchange(auth, redirect_uri="")
    assert status == 200


@pytest.mark.parametrize(("extra", "error"), [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"code_challenge": "short"}, "invalid_request"),
    ({"scope": "admin superuser"}, "invalid_scope"),
    ({"scope": "openid \x7f"}, "invalid_scope"),
    ({"resource": "https://other.example.com/mcp"}, "invalid_target"),
])
async def test_errors_after_the_redirect_uri_is_trusted_go_back_to_the_client(
        facade: Facade, extra: dict[str, str | None], error: str) -> None:
    """RFC 6749 §4.1.2.1 with state, plus the RFC 9207 iss; nothing is stored."""
    client = facade.client()
    await client.register()
    before = await stored_state(facade.redis)
    response, auth = await client.start(**extra)
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith(client.redirect_uri + "?")
    params = query_of(location)
    assert params["error"] == error
    assert params["error_description"]
    assert params["state"] == auth.state
    assert params["iss"] == facade.url
    assert "code" not in params
    assert_unchanged(before, await stored_state(facade.redis))


async def test_unknown_scopes_are_dropped_not_fatal(facade: Facade) -> None:
    """claude.ai sends fixed scopes; step-up widens scope without re-registering."""
    client = facade.client()
    await client.register(scope="openid")
    auth = await client.authorize(scope="openid email mcp:tools offline_access")
    status, body = await client.exchange(auth)
    assert status == 200
    assert body["scope"] == "openid email offline_access"


async def test_missing_scope_grants_the_default_scopes(facade: Facade) -> None:
    """RFC 6749 §3.3: without a scope parameter the client gets PROXY_SCOPES' default (openid offline_access)."""
    client = facade.client()
    await client.register()
    auth = await client.authorize(scope=None)
    status, body = await client.exchange(auth)
    assert status == 200
    assert body["scope"] == "openid offline_access"


@pytest.mark.parametrize("resource", [None, "http://127.0.0.1:{port}/mcp", "HTTP://127.0.0.1:{port}/mcp/",
                                      "http://127.0.0.1:{port}/mcp/"])
async def test_resource_is_normalised_and_defaults_to_the_single_resource(
        facade: Facade, resource: str | None) -> None:
    """RFC 8707 with the tolerance older SDKs need: case of scheme/host, a trailing slash."""
    client = facade.client()
    await client.register()
    value = resource.format(port=facade.settings.port) if resource else None
    auth = await client.authorize(resource=value)
    status, body = await client.exchange(auth)
    assert status == 200, body
    from joserfc import jwt
    assert jwt.decode(body["access_token"], await client.jwks()).claims["aud"] == facade.url + "/mcp"


async def test_transaction_is_stored_with_a_ten_minute_ttl(facade: Facade) -> None:
    """PROXY_TRANSACTION_TTL_S: the pending upstream hop is one stored transaction that expires after 600 s."""
    client = facade.client()
    await client.register()
    response, _ = await client.start()
    assert response.status == 302
    tx_keys = [key for key in await facade.keys() if ":tx:" in key]
    assert len(tx_keys) == 1
    assert 590 < await facade.redis.ttl(tx_keys[0]) <= 600


async def test_replayed_or_unknown_callback_state_is_an_html_page(facade: Facade) -> None:
    """RFC 6749 §10.12: a /callback state used once already, or never issued, is a 400 page, never a redirect."""
    client = facade.client()
    await client.register()
    response, _auth = await client.start()
    upstream = await client.get(response.headers["Location"])
    callback_url = upstream.headers["Location"]
    first = await client.get(callback_url)
    assert first.status == 302
    replay = await client.get(callback_url)
    assert replay.status == 400
    assert "Location" not in replay.headers
    await assert_html_error(facade, "/callback?state=made-up&code=x", "unknown")
