"""Step-up authorization end to end: the MCP SDK's OAuth client, the gateway's 403, a new authorization.

The SDK client starts with no token: the gateway's 401 leads it through RFC 9728 discovery, DCR and a
sign-in (a scripted browser through the facade and the dev IdP) to a token with the 401's scopes. A
`tools/call` of a tool the per-tool policy guards is then 403 `insufficient_scope`; the SDK starts a new
authorization for the union of what it holds and what the challenge names, the facade grants the
added scope (within PROXY_SCOPES, beyond what the client registered), the token response says so in
`scope`, and the retried call succeeds.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
from mcp.client import Client as McpClient
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
from pydantic import AnyUrl

from tests.conftest import free_port
from tests.interop.browser import Browser
from tests.interop.test_mcp_python_sdk import MemoryStorage
from tests.resource.conftest import GatewayFactory, structured, tool_text


class Headless:
    """The SDK's redirect/callback handlers: a scripted browser walks to the loopback redirect URI."""

    def __init__(self, redirect_uri: str) -> None:
        self.redirect_uri = redirect_uri
        self.result: AuthorizationCodeResult | None = None
        self.authorize_scopes: list[str] = []

    async def redirect_handler(self, url: str) -> None:
        self.authorize_scopes.append(parse_qs(urlsplit(url).query).get("scope", [""])[0])
        final = await Browser().authorize(url, stop_at=self.redirect_uri)
        query = {name: values[0] for name, values in parse_qs(urlsplit(final).query).items()}
        self.result = AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))

    async def callback_handler(self) -> AuthorizationCodeResult:
        assert self.result is not None
        result, self.result = self.result, None
        return result


async def test_403_insufficient_scope_then_reauthorization_then_the_retried_call_succeeds(
        make_gateway: GatewayFactory) -> None:
    """403 -> a second authorization asking for the union including mcp:deploy -> a token whose `scope`
    has it -> the deploy call succeeds; the other tool worked with the first token all along."""
    facade = await make_gateway(scopes="openid offline_access mcp:deploy", tool_scopes="deploy=mcp:deploy")
    resource = facade.url + "/mcp"
    headless = Headless(f"http://127.0.0.1:{free_port()}/callback")
    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=resource,
        client_metadata=OAuthClientMetadata(client_name="step-up test", redirect_uris=[AnyUrl(headless.redirect_uri)]),
        storage=storage, redirect_handler=headless.redirect_handler, callback_handler=headless.callback_handler)
    answers: list[tuple[str, str, int, str]] = []

    async def record(response: httpx2.Response) -> None:
        challenge = response.headers.get("www-authenticate", "")
        answers.append((response.request.method, str(response.request.url).split("?")[0], response.status_code,
                        challenge))

    hooks: dict[str, list[Any]] = {"response": [record]}
    async with httpx2.AsyncClient(auth=provider, event_hooks=hooks, timeout=30) as http, McpClient(
            streamable_http_client(resource, http_client=http)) as client:
        first = structured(await client.call_tool("headers", {}))["headers"]
        assert first["x-auth-request-user"] == ["demo-user"]
        first_scopes = set(first["x-auth-request-scopes"][0].split())
        assert "mcp:deploy" not in first_scopes and len(headless.authorize_scopes) == 1
        assert storage.tokens is not None and "mcp:deploy" not in (storage.tokens.scope or "")

        assert tool_text(await client.call_tool("deploy", {"target": "prod"})) == "deployed prod"

    refusals = [answer for answer in answers if answer[2] == 403]
    assert refusals and refusals[0][1] == resource
    assert 'error="insufficient_scope"' in refusals[0][3] and 'scope="mcp:deploy"' in refusals[0][3]
    assert len(headless.authorize_scopes) == 2
    asked = set(headless.authorize_scopes[1].split())
    assert {"mcp:deploy"} | (first_scopes - {"offline_access"}) <= asked, headless.authorize_scopes
    assert storage.tokens is not None and "mcp:deploy" in (storage.tokens.scope or "").split()
    assert storage.client_info is not None and "mcp:deploy" not in (storage.client_info.scope or "").split()
