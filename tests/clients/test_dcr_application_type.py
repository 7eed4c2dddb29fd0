"""DCR under MCP 2026-07-28: `application_type` (OIDC Registration §2) accepted, echoed and inferred;
a `web` client with a private-use scheme refused; a client that omits it is never refused for that."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Facade


async def register(facade: Facade, **metadata: Any) -> tuple[int, dict[str, Any]]:
    async with facade.http.post(facade.url + "/register", json=metadata) as response:
        return response.status, await response.json()


@pytest.mark.parametrize(("metadata", "expected"), [
    ({"redirect_uris": ["http://127.0.0.1:3000/cb"]}, "native"),
    ({"redirect_uris": ["com.example.app:/cb"]}, "native"),
    ({"redirect_uris": ["https://app.example.com/cb"]}, "web"),
    ({"redirect_uris": ["https://app.example.com/cb"], "application_type": "native"}, "native"),  # py2 always
    ({"redirect_uris": ["http://localhost/cb"], "application_type": "web"}, "web"),
])
async def test_application_type_is_echoed_or_inferred(facade: Facade, metadata: dict[str, Any],
                                                      expected: str) -> None:
    """201 with application_type: what was sent, else native for loopback/private-use redirects, else web."""
    status, body = await register(facade, **metadata)
    assert status == 201 and body["application_type"] == expected


async def test_web_client_with_private_use_scheme_is_refused(facade: Facade) -> None:
    """OIDC Registration §2: a web client's redirects are http(s); a private-use scheme is refused."""
    status, body = await register(facade, redirect_uris=["com.example.app:/cb"], application_type="web")
    assert status == 400 and body["error"] == "invalid_redirect_uri"


async def test_unknown_application_type_is_invalid_metadata(facade: Facade) -> None:
    """Only native and web exist."""
    status, body = await register(facade, redirect_uris=["https://a.example/cb"], application_type="desktop")
    assert status == 400 and body["error"] == "invalid_client_metadata"


async def test_python_sdk_shaped_registration_is_public(facade: Facade) -> None:
    """The Python SDK 2.x body (no token_endpoint_auth_method, application_type native): the answer names
    `none` and carries no secret, which is what that SDK accepts."""
    status, body = await register(facade, redirect_uris=["http://localhost:3030/callback"], application_type="native",
                                  grant_types=["authorization_code", "refresh_token"], response_types=["code"],
                                  scope="openid", client_name="py2")
    assert status == 201
    assert body["token_endpoint_auth_method"] == "none" and "client_secret" not in body
