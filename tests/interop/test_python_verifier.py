"""The facade's Python verifier inside a real MCP Python SDK server, driven by the SDK's own client.

The stack's MCP server (mcp_server.py) is `MCPServer` with `FacadeTokenVerifier` as its token verifier
and `BearerAuth` in front. A sign-in through the facade (oidc-provider upstream, scripted browser) gives
the SDK client a token; then the answers a client sees are checked with the SDK client itself:
the tool call succeeds with the token, a call without one gets 401 with the MCP challenge (no `error`),
a bad token 401 `invalid_token`, and a tool needing a scope the token lacks 403 with that `scope`. A
second server process with only the SDK wiring (no middleware) shows the README's three lines suffice to
accept the facade's tokens.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata
from pydantic import AnyUrl

from tests.interop.browser import Browser
from tests.interop.stack import HERE, InteropStack, _start, _wait, fail, free_port
from tests.interop.test_mcp_python_sdk import SDK, Headless, MemoryStorage
from tests.resource.test_core import parse_bearer

pytestmark = pytest.mark.interop


@dataclass
class Seen:
    """Every answer the SDK client got: status and WWW-Authenticate, per URL."""

    answers: list[tuple[str, str, int, str | None]] = field(default_factory=list)

    async def __call__(self, response: httpx2.Response) -> None:
        request = response.request
        self.answers.append((request.method, str(request.url), response.status_code,
                             response.headers.get("www-authenticate")))

    def challenge(self, url: str, status: int) -> dict[str, str]:
        """The parsed challenge of the first answer from `url` with `status`."""
        for _, seen_url, seen_status, header in self.answers:
            if seen_url == url and seen_status == status:
                assert header is not None, f"{status} from {url} without WWW-Authenticate"
                return parse_bearer(header)
        raise AssertionError(f"{SDK}: no {status} from {url} among {self.answers}")


def hooks(seen: Seen) -> dict[str, list[Callable[[httpx2.Response], Awaitable[None]]]]:
    return {"response": [seen]}


async def call_tool(url: str, name: str, *, token: str | None, seen: Seen) -> dict[str, Any]:
    """The SDK client (no auth provider) calling `name`, with a fixed bearer token or none."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with httpx2.AsyncClient(headers=headers, event_hooks=hooks(seen), timeout=30) as http, \
            Client(streamable_http_client(url, http_client=http)) as client:
        result = await client.call_tool(name, {})
        assert not result.is_error, result
        return dict(result.structured_content or {})


async def refused(url: str, name: str, *, token: str | None, seen: Seen) -> None:
    """The same call, expected to fail at the HTTP layer (the test then reads the recorded answer)."""
    try:
        await call_tool(url, name, token=token, seen=seen)
    except Exception:  # the SDK's error type for an HTTP refusal differs between versions; the answer is checked
        return
    raise AssertionError(f"{SDK}: calling {name} at {url} succeeded; it should have been refused")


async def sign_in(interop: InteropStack, seen: Seen) -> tuple[str, dict[str, Any]]:
    """The SDK's OAuth client from the MCP endpoint's 401 to an authenticated `whoami`: (token, identity)."""
    storage = MemoryStorage()
    headless = Headless(Browser(login="verifier-user"), interop.redirect_uri())
    provider = OAuthClientProvider(
        server_url=interop.mcp,
        client_metadata=OAuthClientMetadata(client_name="Python verifier interop",
                                            redirect_uris=[AnyUrl(headless.redirect_uri)]),
        storage=storage, redirect_handler=headless.redirect_handler, callback_handler=headless.callback_handler)
    async with httpx2.AsyncClient(auth=provider, event_hooks=hooks(seen), timeout=30) as http, \
            Client(streamable_http_client(interop.mcp, http_client=http)) as client:
        result = await client.call_tool("whoami", {})
        assert not result.is_error, result
    assert storage.tokens is not None
    return storage.tokens.access_token, dict(result.structured_content or {})


async def test_sdk_server_with_the_verifier_and_bearer_auth(interop: InteropStack) -> None:
    """Sign-in, then each answer a client can get from a verifier-guarded SDK server, seen by the SDK client."""
    metadata = interop.facade + "/.well-known/oauth-protected-resource/mcp"
    seen = Seen()
    try:
        token, identity = await sign_in(interop, seen)
    except Exception as error:
        fail(f"{SDK}: sign-in through the facade failed: {error!r}\n  answers: {seen.answers}\n{interop.logs()}")

    # The first answer was the middleware's 401: where to sign in and which scope, no error (no token sent).
    assert seen.challenge(interop.mcp, 401) == {"scope": "openid", "resource_metadata": metadata}
    # The tool ran with the identity the verifier validated, seen alike by BearerAuth and the SDK.
    assert identity["guard"] == "BearerAuth" and identity["sub"] == identity["principal_sub"] == "verifier-user"
    assert identity["aud"] == interop.mcp and identity["scope"].split()[:1] == ["openid"]

    # The same token, sent by the SDK client as a plain bearer header, calls the tool again.
    again = await call_tool(interop.mcp, "whoami", token=token, seen=Seen())
    assert again["jti"] == identity["jti"]

    # No token: 401 with the MCP challenge, no error.
    no_token = Seen()
    await refused(interop.mcp, "whoami", token=None, seen=no_token)
    assert no_token.challenge(interop.mcp, 401) == {"scope": "openid", "resource_metadata": metadata}

    # A token that is not the facade's: 401 invalid_token.
    bad = Seen()
    await refused(interop.mcp, "whoami", token=token[:-4] + "AAAA", seen=bad)
    challenge = bad.challenge(interop.mcp, 401)
    assert challenge["error"] == "invalid_token" and challenge["resource_metadata"] == metadata

    # A tool needing a scope the token lacks: 403 insufficient_scope naming every scope the call needs.
    forbidden = Seen()
    await refused(interop.mcp, "admin", token=token, seen=forbidden)
    assert forbidden.challenge(interop.mcp, 403) == {"error": "insufficient_scope",
                                                     "error_description": "the token lacks a scope this request needs",
                                                     "scope": "openid mcp:admin", "resource_metadata": metadata}


async def test_the_sdk_wiring_alone_accepts_the_facades_tokens(interop: InteropStack, tmp_path: Path) -> None:
    """`MCPServer(token_verifier=FacadeTokenVerifier(...), auth=AuthSettings(...))` without BearerAuth:
    the facade's token calls the tool, none is refused with 401 (the SDK's own challenge, pointing at the
    metadata the SDK serves itself)."""
    token, _ = await sign_in(interop, Seen())
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    # Same resource identifier as the stack's server (tokens carry it as aud), another port: as behind a
    # load balancer. The verifier checks aud against its configured resource, not the Host it is reached at.
    server = _start("mcp-sdk-only", [sys.executable, str(HERE / "mcp_server.py"), str(port), interop.facade,
                                     interop.mcp, "sdk"], {}, tmp_path, tmp_path)
    try:
        _wait(server, url, method="POST", expect=401)
        identity = await call_tool(url, "whoami", token=token, seen=Seen())
        assert identity["guard"] == "sdk" and identity["sub"] == "verifier-user" and identity["aud"] == interop.mcp
        no_token = Seen()
        await refused(url, "whoami", token=None, seen=no_token)
        challenge = no_token.challenge(url, 401)
        own_metadata = interop.mcp.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
        assert challenge["resource_metadata"] == own_metadata  # the SDK serves its own RFC 9728 document
        bad = Seen()
        await refused(url, "whoami", token=token[:-4] + "AAAA", seen=bad)
        assert bad.challenge(url, 401)["error"] == "invalid_token"
    finally:
        server.stop()
        if server.process.returncode not in (0, -15):
            fail(f"the SDK-only server exited with {server.process.returncode}:\n{server.tail(40)}")


@pytest.mark.parametrize("mode", ["jwtverifier", "bearerauth"])
async def test_fastmcp_accepts_the_facades_tokens(interop: InteropStack, tmp_path: Path, mode: str) -> None:
    """FastMCP, wired as the README shows: its own `JWTVerifier` (JWKS, issuer, audience = the resource)
    in `RemoteAuthProvider`, or no auth of its own behind `BearerAuth`. The facade's token calls the tool;
    none, or a tampered one, gets 401; under BearerAuth a tool needing a missing scope gets 403 + scope."""
    token, _ = await sign_in(interop, Seen())
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    server = _start(f"fastmcp-{mode}", [sys.executable, str(HERE / "fastmcp_server.py"), str(port), interop.facade,
                                        interop.mcp, mode], {}, tmp_path, tmp_path)
    try:
        _wait(server, url, method="POST", expect=401)
        identity = await call_tool(url, "whoami", token=token, seen=Seen())
        guard = "JWTVerifier" if mode == "jwtverifier" else "BearerAuth"
        assert identity == {"guard": guard, "sub": "verifier-user", "aud": interop.mcp}
        for bad_token in (None, token[:-4] + "AAAA"):
            seen = Seen()
            await refused(url, "whoami", token=bad_token, seen=seen)
            challenge = seen.challenge(url, 401)
            assert ("error" in challenge) == (bad_token is not None), challenge
        if mode == "bearerauth":
            seen = Seen()
            await refused(url, "admin", token=token, seen=seen)
            assert seen.challenge(url, 403)["scope"] == "openid mcp:admin"
    except Exception as error:
        fail(f"FastMCP ({mode}): {type(error).__name__}: {error}\n{server.tail(40)}")
    finally:
        server.stop()
