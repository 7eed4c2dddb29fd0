"""The MCP TypeScript SDK v2 client's `CrossAppAccessProvider` (@modelcontextprotocol/client, SEP-990)
against the facade, with the SDK's own `discoverAndRequestJwtAuthGrant` doing leg 1 at the enterprise IdP
(the dev IdP over TLS; node trusts the test CA through NODE_EXTRA_CA_CERTS).

The script (js/cross_app_access_client.mjs) connects to the protected MCP server, gets 401, discovers the
facade through RFC 9728, exchanges the user's id_token for an ID-JAG at the IdP, presents it with the
jwt-bearer grant (client_secret_basic) and calls `whoami`.
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from tests.conftest import free_port
from tests.enterprise.conftest import (  # noqa: F401  (fixtures)
    AGENT,
    AGENT_SECRET,
    IDP_CLIENT,
    IDP_SECRET,
    JWT_BEARER,
    EnterpriseFacade,
    EnterpriseIdp,
    enterprise_idp,
    enterprise_pki,
    make_enterprise_facade,
)
from tests.interop.stack import JS, node_binary, pinned_versions, protected_mcp_server

pytestmark = pytest.mark.interop


async def test_cross_app_access_provider_gets_a_token_and_calls_a_tool(
        make_enterprise_facade: EnterpriseFacade, enterprise_idp: EnterpriseIdp,  # noqa: F811
        enterprise_pki) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """401 -> RFC 9728 -> the facade's metadata -> ID-JAG from the IdP (the SDK's token exchange) ->
    jwt-bearer -> the tool call runs as the IdP's user, for this client and resource."""
    sdk = f"@modelcontextprotocol/client {pinned_versions().get('@modelcontextprotocol/client')}"
    resource = f"http://127.0.0.1:{free_port()}/mcp"
    facade = await make_enterprise_facade(resources=resource)
    enterprise_idp.config.id_jag_client_id = AGENT
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(enterprise_pki.ca_file),
           "ID_TOKEN": await enterprise_idp.id_token("carol"), "IDP_CLIENT_ID": IDP_CLIENT,
           "IDP_CLIENT_SECRET": IDP_SECRET, "CLIENT_ID": AGENT, "CLIENT_SECRET": AGENT_SECRET,
           "SCOPE": "openid mcp:read"}
    with protected_mcp_server(facade.url, resource):
        process = await asyncio.create_subprocess_exec(
            node_binary(), str(JS / "cross_app_access_client.mjs"), resource, facade.url, enterprise_idp.url,
            cwd=JS, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert stdout, f"{sdk}: no output; stderr:\n{stderr.decode(errors='replace')}"
    report = json.loads(stdout.decode().strip().splitlines()[-1])
    assert "error" not in report, f"{sdk}: {report['error']}\n" + "\n".join(report["exchanges"])
    assert f"POST {facade.url}/token ({JWT_BEARER}) -> 200" in report["exchanges"], report["exchanges"]
    assert report["assertions"][0]["audience"].rstrip("/") == facade.url, report["assertions"]
    who = report["result"]["structuredContent"]
    assert who["sub"] == f"{enterprise_idp.url}#carol" and who["client_id"] == AGENT and who["aud"] == resource, who
    assert "refresh_token" not in (report["tokens"] or {}), report["tokens"]
