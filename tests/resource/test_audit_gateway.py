"""The audit trail at the resource side: denials and, when asked for, every tool call through the gateway
to the real MCP SDK server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.resource.conftest import GatewayFactory, mcp_client, token_for, tool_text


def events(path: Path, name: str) -> list[dict[str, object]]:
    return [line for line in map(json.loads, path.read_text().splitlines()) if line["event"] == name]


async def test_tool_calls_and_denials_are_audited_through_the_gateway(make_gateway: GatewayFactory,
                                                                      tmp_path: Path) -> None:
    """With PROXY_AUDIT_TOOL_CALLS on, each tools/call the SDK client makes through the gateway is an
    `audit.tool_call` line (tool, decision, subject, client); a call refused for scope is one with a
    denied decision plus an `audit.gateway_denied` (403), and a forged token an `audit.gateway_denied`
    (401) alone: the body of a request without a good token is never read, so it names no tool. No token
    appears in the trail."""
    trail = tmp_path / "audit.log"
    facade = await make_gateway(scopes="openid offline_access mcp:deploy", tool_scopes="deploy=mcp:deploy",
                                audit_log=str(trail), audit_tool_calls=True)
    body = await token_for(facade, scope="openid offline_access")
    async with mcp_client(facade.url + "/mcp", body["access_token"]) as client:
        await client.call_tool("headers", {})
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "deploy", "arguments": {}}}
    headers = {"Authorization": f"Bearer {body['access_token']}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream"}
    async with facade.http.post(facade.url + "/mcp", data=json.dumps(call), headers=headers) as response:
        assert response.status == 403
    forged = body["access_token"][:-4] + "AAAA"
    async with facade.http.post(facade.url + "/mcp", data=json.dumps(call),
                                headers={**headers, "Authorization": f"Bearer {forged}"}) as response:
        assert response.status == 401
    allowed = await token_for(facade, scope="openid mcp:deploy")
    async with mcp_client(facade.url + "/mcp", allowed["access_token"]) as client:
        assert tool_text(await client.call_tool("deploy", {"target": "prod"})) == "deployed prod"
    calls = [(line["tool"], line["decision"]) for line in events(trail, "audit.tool_call")]
    assert calls == [("headers", "allowed"), ("deploy", "denied:insufficient_scope"), ("deploy", "allowed")]
    first = events(trail, "audit.tool_call")[0]
    assert first["sub"] == "demo-user" and first["client_id"] and first["resource"] == facade.url + "/mcp"
    denied = events(trail, "audit.gateway_denied")
    assert [line["status"] for line in denied] == [403, 401]
    assert denied[0]["sub"] == "demo-user" and denied[0]["needed"] == "mcp:deploy"
    raw = trail.read_text()
    assert body["access_token"] not in raw and allowed["access_token"].split(".")[-1] not in raw


async def test_tool_calls_are_not_audited_unless_asked(make_gateway: GatewayFactory, tmp_path: Path) -> None:
    """PROXY_AUDIT_LOG alone writes no `audit.tool_call` (it is off by default)."""
    trail = tmp_path / "audit.log"
    facade = await make_gateway(audit_log=str(trail))
    body = await token_for(facade)
    async with mcp_client(facade.url + "/mcp", body["access_token"]) as client:
        await client.call_tool("headers", {})
    assert events(trail, "audit.tool_call") == [] and events(trail, "audit.token")
