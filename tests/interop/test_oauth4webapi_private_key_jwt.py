"""oauth4webapi's `PrivateKeyJwt` client authentication against the facade (js/oauth4webapi_private_key_jwt.mjs):
a URL client whose metadata document declares private_key_jwt with a jwks_uri (both served here over
TLS) signs in through oidc-provider, redeems its code, refreshes and revokes with assertions it signs;
a refresh without one is 401 invalid_client."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest
from joserfc import jwk

from tests.interop.browser import Browser
from tests.interop.cimd_host import metadata_host
from tests.interop.stack import JS, InteropStack, fail

pytestmark = pytest.mark.interop
CLIENT_TIMEOUT_S = 45


async def run_client(interop: InteropStack, env: dict[str, str], redirect_uri: str, browser: Browser
                     ) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        interop.node, str(JS / "oauth4webapi_private_key_jwt.mjs"), cwd=JS, env={**os.environ, **env},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    result: dict[str, Any] | None = None
    current = "start"
    try:
        async with asyncio.timeout(CLIENT_TIMEOUT_S):
            while line := await process.stdout.readline():
                if not line.startswith(b"{"):
                    continue
                message = json.loads(line)
                if message["event"] == "step":
                    current = message["name"]
                elif message["event"] == "authorize":
                    final = await browser.authorize(message["url"], stop_at=redirect_uri)
                    process.stdin.write(final.encode() + b"\n")
                    await process.stdin.drain()
                elif message["event"] == "failed":
                    stderr = (await process.stderr.read()).decode(errors="replace")
                    fail(f"{message.get('client')}: step {message.get('step')!r} failed: {message.get('error')}\n"
                         f"  server answered: {message.get('answer')}\n  node stderr: {stderr[:1500]}\n"
                         f"{interop.logs()}")
                elif message["event"] == "done":
                    result = message["facts"]
            await process.wait()
    except TimeoutError:
        fail(f"oauth4webapi PrivateKeyJwt: step {current!r} did not finish within {CLIENT_TIMEOUT_S} s\n"
             f"{interop.logs()}")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert result is not None, f"the client ended without a report\n{interop.logs()}"
    return result


async def test_oauth4webapi_private_key_jwt_code_refresh_revoke(interop: InteropStack) -> None:
    """Metadata advertises private_key_jwt (token and revocation) with RS256; code, refresh and revocation
    authenticate with PrivateKeyJwt; without it the refresh is invalid_client; after revocation the
    refresh token is invalid_grant. The facade fetched the key set once."""
    key = jwk.generate_key("RSA", 2048, parameters={"kid": "o4w-pkjwt-1"})
    redirect_uri = interop.redirect_uri()
    async with metadata_host(interop) as host:
        jwks_uri = host.publish_json("/o4w/jwks.json", {"keys": [key.as_dict(private=False)]})
        url = host.url("/o4w/client.json")
        host.publish_json("/o4w/client.json", {
            "client_id": url, "client_name": "oauth4webapi (private_key_jwt)",
            "redirect_uris": ["http://127.0.0.1/callback"], "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"], "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "RS256", "jwks_uri": jwks_uri})
        facts = await run_client(interop, {
            "ISSUER": interop.facade, "CLIENT_ID": url, "RESOURCE": interop.mcp, "REDIRECT_URI": redirect_uri,
            "PRIVATE_JWK": json.dumps({**key.as_dict(private=True), "alg": "RS256"}),
        }, redirect_uri, Browser(login="o4w-pkjwt"))
        assert host.fetched.count("/o4w/jwks.json") == 1, host.fetched
    assert facts["aud"] == url and facts["sub"], facts
    assert facts["without_key"] == "invalid_client"
    assert facts["after_revocation"] == "invalid_grant"
