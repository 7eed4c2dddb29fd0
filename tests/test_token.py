"""POST /token with grant_type=authorization_code: client identification, PKCE, single use."""

from __future__ import annotations

from urllib.parse import quote, quote_plus

import pytest

from tests.conftest import Facade
from tests.helpers import Authorization, Client, assert_unchanged, basic, stored_state


async def ready(facade: Facade) -> tuple[Client, Authorization]:
    client = facade.client()
    await client.register()
    return client, await client.authorize()


def code_form(client: Client, auth: Authorization, **overrides: str) -> dict[str, str]:
    form = {"grant_type": "authorization_code", "code": auth.params["code"], "code_verifier": auth.verifier,
            "redirect_uri": auth.redirect_uri, "client_id": client.client_id}
    form.update(overrides)
    return {k: v for k, v in form.items() if v != "<absent>"}


@pytest.mark.parametrize("encode", [
    lambda value: quote_plus(value, safe=""),  # oauth4webapi: form-urlencoded
    lambda value: quote(value, safe=""),       # MCP Python SDK
    lambda value: value,                       # MCP TypeScript SDK: raw
])
async def test_basic_credentials_identify_a_public_client_in_every_encoding(facade: Facade, encode: object) -> None:
    """Claude Code sends Basic without body client_id; the secret is ignored for a public client."""
    client, auth = await ready(facade)
    secret = "a secret+with plus/and:colon"
    header = basic(encode(client.client_id), encode(secret))  # type: ignore[operator]
    status, body, _ = await client.token(code_form(client, auth, client_id="<absent>"), {"Authorization": header})
    assert status == 200, body


async def test_basic_halves_are_form_decoded_plus_is_space(facade: Facade) -> None:
    """RFC 6749 §2.3.1: '+' in the client_id half decodes to a space, so a '+'-containing id differs."""
    client, auth = await ready(facade)
    header = basic(client.client_id + "+", "x")
    status, body, _ = await client.token(code_form(client, auth, client_id="<absent>"), {"Authorization": header})
    assert (status, body["error"]) == (401, "invalid_client")  # "<id> " is no registered client
    escaped = "".join(f"%{ord(ch):02X}" for ch in client.client_id)
    header = basic(escaped, "a+b%20c")
    status, body, _ = await client.token(code_form(client, auth, client_id="<absent>"), {"Authorization": header})
    assert status == 200, body


async def test_client_secret_post_is_accepted_and_the_secret_ignored(facade: Facade) -> None:
    """RFC 6749 §2.3.1: client_secret in the body is accepted from a public client and ignored, so such
    clients still redeem."""
    client, auth = await ready(facade)
    status, body, _ = await client.token(code_form(client, auth, client_secret="whatever"))
    assert status == 200, body


@pytest.mark.parametrize(("field", "value", "error"), [
    ("redirect_uri", "http://127.0.0.1:5599/other", "invalid_grant"),
    ("code", "<absent>", "invalid_request"),
    ("code", "made.up", "invalid_grant"),
    ("code", "garbage", "invalid_grant"),
])
async def test_bad_redemptions_fail_and_leave_the_code_usable(facade: Facade, field: str, value: str,
                                                              error: str) -> None:
    """A failed attempt changes no stored state: the rightful holder can still redeem."""
    client, auth = await ready(facade)
    before = await stored_state(facade.redis)
    status, body, response = await client.token(code_form(client, auth, **{field: value}))
    assert (status, body["error"]) == (400, error)
    assert response.headers["Cache-Control"] == "no-store"
    assert_unchanged(before, await stored_state(facade.redis))
    status, _ = await client.exchange(auth)
    assert status == 200


async def test_code_lives_sixty_seconds_and_is_stored_hashed(facade: Facade) -> None:
    """PROXY_CODE_TTL_S: a code is one key living at most 60 s, whose name holds neither the code nor its
    secret half."""
    _client, auth = await ready(facade)
    code = auth.params["code"]
    keys = [key for key in await facade.keys() if ":code:" in key]
    assert len(keys) == 1
    assert code not in keys[0] and code.split(".")[1] not in keys[0]
    assert 55 < await facade.redis.ttl(keys[0]) <= 60


@pytest.mark.parametrize(("form", "status", "error"), [
    ({"grant_type": "password", "username": "a", "password": "b"}, 400, "unsupported_grant_type"),
    ({"grant_type": "client_credentials"}, 400, "unsupported_grant_type"),
    ({"code": "x"}, 400, "invalid_request"),
])
async def test_grant_type_errors(facade: Facade, form: dict[str, str], status: int, error: str) -> None:
    """RFC 6749 §5.2: an unsupported grant_type is unsupported_grant_type, a missing one invalid_request, both
    as JSON."""
    async with facade.http.post(facade.url + "/token", data=form) as response:
        assert response.status == status
        assert response.content_type == "application/json"
        assert (await response.json())["error"] == error


async def test_json_body_at_token_is_invalid_request(facade: Facade) -> None:
    """RFC 6749 §3.2: /token takes application/x-www-form-urlencoded only; a JSON body is 400 invalid_request."""
    async with facade.http.post(facade.url + "/token", json={"grant_type": "authorization_code"}) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_request"


async def test_repeated_parameters_are_invalid_request(facade: Facade) -> None:
    """RFC 6749 §3.2: request parameters MUST NOT be included more than once."""
    body = "grant_type=authorization_code&code=a&code=b"
    async with facade.http.post(facade.url + "/token", data=body, headers={
            "Content-Type": "application/x-www-form-urlencoded"}) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_request"


async def test_resource_at_token_must_match_the_authorized_one(facade: Facade) -> None:
    """RFC 8707 §2.2: a resource at /token other than the one authorized is invalid_target."""
    client, auth = await ready(facade)
    status, body, _ = await client.token(code_form(client, auth, resource="https://elsewhere.example/mcp"))
    assert (status, body["error"]) == (400, "invalid_target")


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/token", 405), ("GET", "/register", 405),
                                                        ("POST", "/nowhere", 404)])
async def test_router_errors_of_back_channel_endpoints_are_json(facade: Facade, method: str, path: str,
                                                                status: int) -> None:
    """Every 4xx from /token and /register is application/json with an RFC 6749 error code."""
    async with facade.http.request(method, facade.url + path) as response:
        assert response.status == status
        assert response.content_type == "application/json"
        assert (await response.json())["error"] == "invalid_request"
