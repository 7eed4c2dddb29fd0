"""The MCP Python SDK's `IdentityAssertionOAuthProvider` (SEP-990 client, leg 2) against the facade.

The enterprise IdP is the dev IdP over TLS (tests/enterprise/conftest.py); the SDK's `assertion_provider`
callback does leg 1 there (SSO, then RFC 8693 token exchange for an ID-JAG naming the audience and
resource the SDK passes it). The SDK calls the protected MCP server (the interop suite's, the SDK's own
server with the facade's Python verifier), gets 401, reads the facade's metadata from the issuer it was
configured with, presents the ID-JAG with the jwt-bearer grant as a confidential client, and retries the
call. When its token expires it asks for a fresh ID-JAG: the facade issues no refresh token.
"""

from __future__ import annotations

import importlib.metadata
import time
from pathlib import Path

import httpx2
import pytest
from mcp.client import Client
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthToken

from tests.conftest import free_port
from tests.enterprise.conftest import (  # noqa: F401  (fixtures)
    AGENT,
    AGENT_SECRET,
    EnterpriseFacade,
    EnterpriseIdp,
    enterprise_idp,
    enterprise_pki,
    make_enterprise_facade,
)
from tests.interop.stack import protected_mcp_server

pytestmark = pytest.mark.interop
SDK = f"mcp (Python SDK) {importlib.metadata.version('mcp')}"
HERE = Path(__file__).resolve().parent


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> None:
        return None

    async def set_client_info(self, client_info: object) -> None:
        return None


async def test_identity_assertion_provider_gets_a_token_and_calls_a_tool(
        make_enterprise_facade: EnterpriseFacade, enterprise_idp: EnterpriseIdp) -> None:  # noqa: F811
    """401 -> the configured issuer's metadata -> jwt-bearer with the ID-JAG (client_secret_post) -> the
    tool call succeeds as the IdP's user; after expiry the SDK presents a fresh ID-JAG (no refresh token)."""
    resource = f"http://127.0.0.1:{free_port()}/mcp"
    facade = await make_enterprise_facade(resources=resource)
    enterprise_idp.config.id_jag_client_id = AGENT
    asked: list[tuple[str, str]] = []

    async def assertion_provider(audience: str, requested_resource: str) -> str:
        asked.append((audience, requested_resource))
        return await enterprise_idp.id_jag(audience, resource=requested_resource, scope="openid mcp:read")

    storage = MemoryStorage()
    provider = IdentityAssertionOAuthProvider(server_url=resource, storage=storage, client_id=AGENT,
                                              client_secret=AGENT_SECRET, issuer=facade.url,
                                              assertion_provider=assertion_provider, scope="openid mcp:read")
    with protected_mcp_server(facade.url, resource):
        async with httpx2.AsyncClient(auth=provider, timeout=30) as http, \
                Client(streamable_http_client(resource, http_client=http)) as client:
            result = await client.call_tool("whoami", {})
            assert not result.is_error, f"{SDK}: {result}"
            who = dict(result.structured_content or {})
            assert who["sub"] == f"{enterprise_idp.url}#alice" and who["client_id"] == AGENT, who
            assert who["aud"] == resource and who["scope"] == "openid mcp:read", who
            assert asked == [(facade.url, resource)]
            assert storage.tokens is not None and storage.tokens.refresh_token is None
            first = storage.tokens.access_token

            provider._expiry = time.time() - 1  # an hour later, as far as the SDK knows
            result = await client.call_tool("whoami", {})
            assert not result.is_error, f"{SDK}: {result}"
            assert len(asked) == 2 and storage.tokens.access_token != first
