"""The official MCP TypeScript SDK client (@modelcontextprotocol/sdk, pinned by js/package-lock.json)
against the facade, from the protected MCP endpoint's 401 to an authenticated tool call and a refresh:
once with a URL client id (CIMD: the facade fetches the client's document over TLS), once through DCR.

The SDK runs in node (js/mcp_ts_client.mjs); when it wants the browser it prints the authorization URL,
the scripted browser signs in (and approves the consent page), and the redirect URL goes back to it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.interop.browser import Browser
from tests.interop.cimd_host import metadata_host
from tests.interop.stack import JS, InteropStack, fail

pytestmark = pytest.mark.interop
SDK = "@modelcontextprotocol/sdk (TypeScript)"


async def run_ts_client(stack: InteropStack, redirect_uri: str, metadata_url: str | None) -> dict[str, Any]:
    """Drive js/mcp_ts_client.mjs; its last JSON line is the outcome."""
    extra = [metadata_url] if metadata_url else []
    argv = [stack.node, str(JS / "mcp_ts_client.mjs"), stack.mcp, redirect_uri, *extra]
    process = await asyncio.create_subprocess_exec(*argv, cwd=JS, stdin=asyncio.subprocess.PIPE,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    browser = Browser(login="ts-user")
    outcome: dict[str, Any] = {}
    try:
        async with asyncio.timeout(60):
            while line := await process.stdout.readline():
                message = json.loads(line)
                if "authorize" in message:
                    final = await browser.authorize(message["authorize"], stop_at=redirect_uri.rsplit("/", 1)[0])
                    process.stdin.write(final.encode() + b"\n")
                    await process.stdin.drain()
                else:
                    outcome = message
            await process.wait()
    except TimeoutError:
        process.kill()
        fail(f"{SDK}: no outcome within 60 s\n{stack.logs()}")
    if process.returncode != 0 or "error" in outcome:
        stderr = (await process.stderr.read()).decode(errors="replace")
        fail(f"{SDK}: the client failed: {outcome.get('error')}\n  its requests: {outcome.get('exchanges')}\n"
             f"  stderr: {stderr[-2000:]}\n{stack.logs()}")
    return outcome


def whoami(result: dict[str, Any]) -> dict[str, Any]:
    assert not result.get("isError"), result
    return dict(result["structuredContent"])


async def test_ts_sdk_with_a_url_client_id(interop: InteropStack) -> None:
    """The facade advertises CIMD, so the SDK sends its document URL as client_id (no /register); the
    facade fetches the document once, accepts the ephemeral loopback port against the port-less
    redirect URI, issues tokens whose client_id is the URL, and the SDK's refresh works."""
    async with metadata_host(interop) as host:
        url = host.publish("/oauth/ts-client.json", "MCP TypeScript SDK (CIMD)")
        outcome = await run_ts_client(interop, interop.redirect_uri(), url)
        assert outcome["client"]["client_id"] == url
        assert not any("/register" in line for line in outcome["exchanges"]), outcome["exchanges"]
        first, second = whoami(outcome["result"]), whoami(outcome["after_refresh"])
        assert first["client_id"] == url and first["sub"] == "ts-user" and first["aud"] == interop.mcp
        assert second["client_id"] == url and second["jti"] != first["jti"]
        assert outcome["refreshed"], outcome["exchanges"]
        assert host.fetched == ["/oauth/ts-client.json"]


async def test_ts_sdk_through_dcr(interop: InteropStack) -> None:
    """Without a metadata URL the same SDK registers (DCR) and completes the same flow and refresh."""
    outcome = await run_ts_client(interop, interop.redirect_uri(), None)
    client_id = outcome["client"]["client_id"]
    assert not client_id.startswith("https://")
    assert any("/register -> 201" in line for line in outcome["exchanges"]), outcome["exchanges"]
    first, second = whoami(outcome["result"]), whoami(outcome["after_refresh"])
    assert first["client_id"] == client_id == second["client_id"]
    assert outcome["refreshed"], outcome["exchanges"]
