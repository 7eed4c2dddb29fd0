"""The official MCP Python SDK's OAuth client (`mcp.client.auth.OAuthClientProvider`) against the facade.

The SDK is not told where the authorization server is: it calls the protected MCP endpoint, gets 401
with `resource_metadata` pointing at the facade's RFC 9728 document, and from there discovers the
facade, registers (DCR), sends the browser (the scripted one here, signing in at oidc-provider) to
/authorize, redeems the code, and retries the call with the access token. Then the access token
expires as far as the SDK knows, and the next call refreshes it first.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from tests.interop.browser import Browser
from tests.interop.stack import InteropStack, fail

pytestmark = pytest.mark.interop
SDK = f"mcp (Python SDK) {importlib.metadata.version('mcp')}"


class MemoryStorage:
    """The SDK's `TokenStorage`, in memory: what an app would keep in its keychain."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@dataclass
class Exchange:
    """One request the SDK made and the server's answer; `grant` is a token request's grant_type."""

    method: str
    url: str
    status: int
    body: str
    grant: str | None = None

    def __str__(self) -> str:
        what = f" ({self.grant})" if self.grant else ""
        return f"{self.method} {self.url}{what} -> HTTP {self.status} {self.body[:600]}"


@dataclass
class Recorder:
    """Every HTTP answer the SDK received (bodies of non-streaming ones), for assertions and failure reports."""

    exchanges: list[Exchange] = field(default_factory=list)

    async def __call__(self, response: httpx2.Response) -> None:
        body = ""
        if "text/event-stream" not in response.headers.get("content-type", ""):
            body = (await response.aread()).decode(errors="replace")
        request = response.request
        grant = None
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            grant = parse_qs(request.content.decode()).get("grant_type", [None])[0]
        self.exchanges.append(Exchange(request.method, str(request.url), response.status_code, body, grant))

    def since(self, mark: int) -> list[Exchange]:
        return self.exchanges[mark:]


@dataclass
class Headless:
    """The SDK's redirect and callback handlers without a person: the scripted browser walks the
    authorize URL and the loopback redirect it ends at is parsed the way a local listener would."""

    browser: Browser
    redirect_uri: str
    result: AuthorizationCodeResult | None = None
    issuers: list[str | None] = field(default_factory=list)  # RFC 9207 `iss` of each authorization response

    async def redirect_handler(self, authorization_url: str) -> None:
        final = await self.browser.authorize(authorization_url, stop_at=self.redirect_uri)
        query = {name: values[0] for name, values in parse_qs(urlsplit(final).query).items()}
        if "code" not in query:
            raise AssertionError(f"the authorization ended without a code: {final}")
        self.result = AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))
        self.issuers.append(query.get("iss"))

    async def callback_handler(self) -> AuthorizationCodeResult:
        assert self.result is not None, "callback_handler ran before redirect_handler"
        result, self.result = self.result, None
        return result


def _leaves(error: BaseException) -> list[BaseException]:
    """The real failures inside anyio's exception groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


@asynccontextmanager
async def step(name: str, recorder: Recorder, stack: InteropStack) -> AsyncIterator[int]:
    """Name the client and the step in any failure, with the server answers received during the step."""
    mark = len(recorder.exchanges)
    try:
        yield mark
    except Exception as error:  # any failure: reported with the step and the answers
        causes = "; ".join(f"{type(leaf).__name__}: {leaf}" for leaf in _leaves(error))
        answers = "\n".join(f"    {exchange}" for exchange in recorder.since(mark)) or "    (none)"
        fail(f"{SDK}: step {name!r} failed: {causes}\n  server answers in this step:\n{answers}\n{stack.logs()}")


def _payload(token: str) -> dict[str, Any]:
    """A JWT's payload, unverified: only to tell tokens apart (the MCP server verified them)."""
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


async def _whoami(client: Client) -> dict[str, Any]:
    result = await client.call_tool("whoami", {})
    assert not result.is_error, result
    return dict(result.structured_content or {})


def _find(exchanges: list[Exchange], method: str, url: str) -> Exchange:
    for exchange in exchanges:
        if exchange.method == method and exchange.url.split("?")[0] == url:
            return exchange
    raise AssertionError(f"{SDK}: no {method} {url} among:\n" + "\n".join(f"  {e}" for e in exchanges))


async def test_mcp_sdk_from_401_through_prm_to_authenticated_call_then_refresh(interop: InteropStack) -> None:
    """OAuthClientProvider + streamable HTTP, default client metadata (DCR, no auth method): a tool call
    answered 401 ends authenticated after one sign-in; once the token expires the SDK refreshes it."""
    storage = MemoryStorage()
    headless = Headless(Browser(login="mcp-user"), interop.redirect_uri())
    provider = OAuthClientProvider(
        server_url=interop.mcp,
        client_metadata=OAuthClientMetadata(client_name="MCP Python SDK interop",
                                            redirect_uris=[AnyUrl(headless.redirect_uri)]),
        storage=storage,
        redirect_handler=headless.redirect_handler,
        callback_handler=headless.callback_handler,
    )
    recorder = Recorder()
    hooks: dict[str, list[Callable[[httpx2.Response], Awaitable[None]]]] = {"response": [recorder]}
    idp_refreshes = interop.idp_events().count("grant refresh_token")
    async with httpx2.AsyncClient(auth=provider, event_hooks=hooks, timeout=30) as http:
        transport = streamable_http_client(interop.mcp, http_client=http)
        async with step("connect and first call (401 -> RFC 9728 -> discovery -> DCR -> authorize -> token)",
                        recorder, interop) as mark, Client(transport) as client:
            first = await _whoami(client)
            flow = recorder.since(mark)

            # The flow began at the MCP endpoint's 401 and went through the facade's documents.
            assert flow[0].url == interop.mcp and flow[0].status == 401, flow[0]
            prm_url = interop.facade + "/.well-known/oauth-protected-resource/mcp"
            prm = json.loads(_find(flow, "GET", prm_url).body)
            assert prm["resource"] == interop.mcp and prm["authorization_servers"] == [interop.facade], prm
            assert _find(flow, "POST", interop.facade + "/register").status == 201
            token = _find(flow, "POST", interop.facade + "/token")
            assert token.status == 200 and token.grant == "authorization_code", token
            assert headless.issuers == [interop.facade], headless.issuers  # RFC 9207, checked by the SDK too
            assert storage.client_info is not None and storage.tokens is not None
            assert storage.tokens.refresh_token, "no refresh token: offline_access was not granted"
            assert first["sub"] == "mcp-user", first
            assert first["client_id"] == storage.client_info.client_id, first
            assert first["aud"] == interop.mcp, first
            first_access, first_refresh = storage.tokens.access_token, storage.tokens.refresh_token
            assert first["jti"] == _payload(first_access)["jti"]

            # The access token has expired as far as the SDK knows (an hour passing, without the wait):
            # the next call must refresh first, then succeed with the new token.
            provider.context.token_expiry_time = time.time() - 1
            async with step("refresh (expired access token) and call", recorder, interop) as refresh_mark:
                second = await _whoami(client)
                refresh = _find(recorder.since(refresh_mark), "POST", interop.facade + "/token")
                assert refresh.status == 200 and refresh.grant == "refresh_token", refresh
                assert storage.tokens.access_token != first_access
                assert storage.tokens.refresh_token not in (None, first_refresh), "the refresh token did not rotate"
                assert second["jti"] == _payload(storage.tokens.access_token)["jti"], second
                assert second["sub"] == "mcp-user" and second["client_id"] == first["client_id"], second
    assert interop.idp_events().count("grant refresh_token") > idp_refreshes, (
        f"{SDK}: the refresh at the facade did not refresh the upstream grant at oidc-provider\n{interop.logs()}")
