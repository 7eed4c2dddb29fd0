"""A strict client, panva's oauth4webapi, through the whole flow against the facade and oidc-provider.

The client logic is JavaScript (js/oauth4webapi_client.mjs), run by node; the browser leg in between
is the scripted browser here, which signs in at oidc-provider. See that script for the steps.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest

from tests.interop.browser import Browser
from tests.interop.stack import JS, InteropStack, fail

pytestmark = pytest.mark.interop
CLIENT_TIMEOUT_S = 45


def _failure(stack: InteropStack, report: dict[str, Any], stderr: str) -> str:
    """`<client>: step '<step>' failed: <error>` + the server's answer (status, body) + the logs."""
    lines = [f"{report.get('client', 'oauth4webapi')}: step {report.get('step')!r} failed: {report.get('error')}"]
    if report.get("code"):
        lines.append(f"  code: {report['code']}")
    answer = report.get("answer")
    if answer:
        request = answer.get("request", {})
        lines.append(f"  request: {request.get('method')} {request.get('url')}")
        lines.append(f"  server answered: HTTP {answer.get('status')} {answer.get('body')}")
        challenge = answer.get("headers", {}).get("www-authenticate")
        if challenge:
            lines.append(f"  www-authenticate: {challenge}")
    if report.get("cause") is not None:
        lines.append(f"  cause: {json.dumps(report['cause'])[:1500]}")
    if stderr.strip():
        lines.append(f"  node stderr: {stderr.strip()[:1500]}")
    lines.append(stack.logs())
    return "\n".join(lines)


async def test_oauth4webapi_discovery_dcr_pkce_iss_id_token_refresh_rotation_reuse_basic(
        interop: InteropStack) -> None:
    """Discovery (PRM from the 401, both AS well-knowns), DCR, code + PKCE S256 + state + nonce +
    resource, RFC 9207 iss, id_token claims and signature, JWT access token, refresh with rotation,
    client_secret_basic with a form-urlencoded secret, reuse of a rotated refresh token refused."""
    redirect_uri = interop.redirect_uri()
    browser = Browser(login="o4w-user")
    upstream_before = len(interop.idp_events())
    process = await asyncio.create_subprocess_exec(
        interop.node, str(JS / "oauth4webapi_client.mjs"),
        cwd=JS, env={**os.environ, "RESOURCE": interop.mcp, "REDIRECT_URI": redirect_uri},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    result: dict[str, Any] | None = None
    current = "start"
    try:
        async with asyncio.timeout(CLIENT_TIMEOUT_S):
            while line := await process.stdout.readline():
                if not line.startswith(b"{"):
                    continue  # not the script's protocol (a library printing): ignored
                message = json.loads(line)
                if message["event"] == "step":
                    current = message["name"]
                elif message["event"] == "authorize":
                    try:
                        final = await browser.authorize(message["url"], stop_at=redirect_uri)
                    except AssertionError as exc:
                        fail(f"oauth4webapi: step 'authorization (browser)' failed: {exc}\n{interop.logs()}")
                    process.stdin.write(final.encode() + b"\n")
                    await process.stdin.drain()
                elif message["event"] == "failed":
                    stderr = (await process.stderr.read()).decode(errors="replace")
                    fail(_failure(interop, message, stderr))
                elif message["event"] == "done":
                    result = message
            code = await process.wait()
    except TimeoutError:
        fail(f"oauth4webapi: step {current!r} did not finish within {CLIENT_TIMEOUT_S} s\n{interop.logs()}")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        process.stdin.close()
        await process.stdin.wait_closed()
    stderr = (await process.stderr.read()).decode(errors="replace")
    assert result is not None and code == 0, (
        f"oauth4webapi: the client exited with {code} without a report\n  stderr: {stderr[:2000]}\n{interop.logs()}")

    facts = result["facts"]
    assert facts["issuer"] == interop.facade, facts  # PRM authorization_servers[0], byte for byte
    id_token = facts["id_token"]
    assert id_token["iss"] == interop.facade
    assert id_token["sub"], id_token
    assert id_token["email"] == "o4w-user@interop.example", "the upstream user's email did not reach the id_token"
    assert set(facts["scope"].split()) >= {"openid", "offline_access"}, facts["scope"]
    assert facts["replay"] == "invalid_grant"
    # Behind the two successful refreshes, the facade refreshed its upstream grant at oidc-provider
    # (PROXY_UPSTREAM_REFRESH_SKEW_S makes it do so every time), and the detected reuse revoked it.
    upstream = interop.idp_events()[upstream_before:]
    assert upstream.count("grant refresh_token") == 2, f"oidc-provider saw {upstream}\n{interop.logs()}"
    assert "grant revoked" in upstream, f"reuse detection did not revoke the upstream grant: {upstream}"
