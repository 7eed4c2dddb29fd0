"""An operator's ending of a user's grants reaches the gateway at once (the real MCP SDK server behind it)."""

from __future__ import annotations

import json

from proxy.admin.grants import Selector, end_grants
from tests.resource.conftest import GatewayFactory, mcp_client, structured, token_for


async def test_the_gateway_refuses_an_ended_grants_token_at_once(make_gateway: GatewayFactory) -> None:
    """A token that just called a tool through the gateway is 401 invalid_token on its next request once
    `grants revoke --sub` ended its family, well before its `exp`."""
    gateway = await make_gateway()
    token = (await token_for(gateway))["access_token"]
    async with mcp_client(gateway.url + "/mcp", token) as client:
        assert structured(await client.call_tool("headers", {}))["headers"]["x-auth-request-user"] == ["demo-user"]
    ended = await end_grants(gateway.services.store, gateway.services.upstream, Selector(sub="demo-user"),
                             by="test", approvals_lifetime_s=60)
    assert len(ended) == 1
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream"}
    async with gateway.http.post(gateway.url + "/mcp", data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
                                 headers=headers) as response:
        assert response.status == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
