"""What the official MCP TypeScript SDK does with the facade's answer to a refresh whose upstream part
failed (issue 17): the upstream error policy answers 503 `temporarily_unavailable` for operator and
transient failures because the SDK keeps its tokens on it, and `invalid_grant` only for a grant that is
really gone, on which the SDK drops its tokens and signs in again. The SDK's own `auth()` runs in node
(js/ts_refresh_failure.mjs) against a facade in front of the fake OpenID provider."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests import test_profiles
from tests.interop.stack import JS, node_binary
from tests.test_profiles import CLIENT_ID, Start
from tests.upstreams import FakeOidc, Fault, OidcQuirks

pytestmark = pytest.mark.interop
start = test_profiles.start  # the fixture: a facade in front of a fake IdP


async def sdk_refresh(mcp_url: str, client_id: str, refresh_token: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        node_binary(), str(JS / "ts_refresh_failure.mjs"), mcp_url, client_id, refresh_token, cwd=JS,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    return dict(json.loads(stdout.decode().splitlines()[-1]))


@pytest.mark.parametrize(("upstream", "kept", "events"), [
    ("wrong secret", True, []),  # operator: 503, the SDK re-throws and keeps everything
    ("down", True, []),  # transient: 503
    ("grant gone", False, ["invalidateCredentials:tokens", "redirectToAuthorization"]),  # terminal
])
async def test_the_ts_sdk_keeps_its_tokens_unless_the_upstream_grant_is_gone(
        start: Start, upstream: str, kept: bool, events: list[str]) -> None:
    """Operator and transient failures: the SDK throws TemporarilyUnavailableError, keeps its refresh token
    and does not send the user to the browser; the facade's family is intact. Terminal: the SDK drops its
    tokens and starts a new sign-in."""
    fake = FakeOidc(OidcQuirks(access_token_ttl_s=30))  # within PROXY_UPSTREAM_REFRESH_SKEW_S: refreshed upstream
    facade = await start("generic", fake, upstream_offline_access="scope")
    client = facade.client()
    body = await client.signed_in()
    if upstream == "wrong secret":
        fake.clients[CLIENT_ID]["secret"] = "rotated at the IdP"
    elif upstream == "down":
        fake.faults["token"] = Fault(503, "down", grant_type="refresh_token")
    else:
        fake.faults["token"] = Fault(400, {"error": "invalid_grant"}, grant_type="refresh_token")
    seen = await sdk_refresh(facade.url + "/mcp", client.client_id, body["refresh_token"])
    assert seen["kept"] is kept and seen["events"] == events, seen
    if kept:
        assert seen["outcome"] == "threw TemporarilyUnavailableError", seen
        fake.faults.clear()
        fake.clients[CLIENT_ID]["secret"] = test_profiles.CLIENT_SECRET
        assert (await client.refresh(body["refresh_token"]))[0] == 200  # the same token, once the IdP is back
