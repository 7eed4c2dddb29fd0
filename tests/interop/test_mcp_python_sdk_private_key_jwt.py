"""The MCP Python SDK's `PrivateKeyJWTOAuthProvider` (the client-credentials extension with
private_key_jwt, RFC 7523 §2.2) against the facade: a pre-registered machine client whose public key is
in PROXY_CLIENTS_FILE gets a token from its own signed assertion (no browser, no secret) and calls the
MCP server; the same provider with another key is refused with 401 invalid_client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx2
import pytest
from joserfc import jwk
from mcp.client import Client
from mcp.client.auth.extensions.client_credentials import PrivateKeyJWTOAuthProvider, SignedJWTParameters
from mcp.client.streamable_http import streamable_http_client

from tests.interop.stack import AGENT_CLIENT_ID, InteropStack
from tests.interop.test_mcp_python_sdk import MemoryStorage, Recorder, _find, _whoami, step

pytestmark = pytest.mark.interop


def provider(stack: InteropStack, key: jwk.RSAKey, storage: MemoryStorage) -> PrivateKeyJWTOAuthProvider:
    """As the SDK documents it: SignedJWTParameters signs each assertion (aud = the AS issuer)."""
    pem = key.as_pem(private=True).decode()
    params = SignedJWTParameters(issuer=AGENT_CLIENT_ID, subject=AGENT_CLIENT_ID, signing_key=pem)
    return PrivateKeyJWTOAuthProvider(server_url=stack.machine_mcp, storage=storage, client_id=AGENT_CLIENT_ID,
                                      assertion_provider=params.create_assertion_provider(), issuer=stack.facade)


async def test_private_key_jwt_client_credentials_calls_the_mcp_server(interop: InteropStack) -> None:
    """401 → PRM → AS metadata → POST /token grant_type=client_credentials with a client_assertion →
    200; the tool sees the machine client as both subject and client."""
    storage = MemoryStorage()
    recorder = Recorder()
    hooks: dict[str, list[Callable[[httpx2.Response], Awaitable[None]]]] = {"response": [recorder]}
    async with httpx2.AsyncClient(auth=provider(interop, interop.agent_key, storage), event_hooks=hooks,
                                  timeout=30) as http:
        transport = streamable_http_client(interop.machine_mcp, http_client=http)
        async with step("client_credentials with private_key_jwt", recorder, interop) as mark, \
                Client(transport) as client:
            identity = await _whoami(client)
            token = _find(recorder.since(mark), "POST", interop.facade + "/token")
            assert token.status == 200 and token.grant == "client_credentials", token
    assert identity["sub"] == f"client:{AGENT_CLIENT_ID}" and identity["client_id"] == AGENT_CLIENT_ID, identity
    assert identity["aud"] == interop.machine_mcp
    assert storage.tokens is not None and storage.tokens.refresh_token is None  # RFC 6749 §4.4.3


async def test_another_key_is_invalid_client(interop: InteropStack) -> None:
    """The provider signing with a key that is not the registered one: the token request is 401
    invalid_client and no call reaches the tool."""
    recorder = Recorder()
    hooks: dict[str, list[Callable[[httpx2.Response], Awaitable[None]]]] = {"response": [recorder]}
    stranger = jwk.generate_key("RSA", 2048, parameters={"kid": "agent-1"})
    async with httpx2.AsyncClient(auth=provider(interop, stranger, MemoryStorage()), event_hooks=hooks,
                                  timeout=30) as http:
        transport = streamable_http_client(interop.machine_mcp, http_client=http)
        with pytest.raises(BaseException):
            async with Client(transport) as client:
                await _whoami(client)
    token = _find(recorder.exchanges, "POST", interop.facade + "/token")
    assert token.status == 401 and '"invalid_client"' in token.body, token
