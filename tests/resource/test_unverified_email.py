"""Issue 22 finding 4: `X-Auth-Request-Email` carries only a verified address (oauth2-proxy, whose header
names these are, sends only verified ones). An IdP saying `email_verified: false`, or saying nothing,
leaves the header empty (still set, so no client value stands in) at the gateway and at forward-auth."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.resource import identity
from tests.conftest import FacadeFactory
from tests.resource.conftest import GatewayFactory, mcp_client, structured, token_for

RESOURCE = "https://mcp.example.com/mcp"


@pytest.mark.parametrize("verified", [False, None, "false"])
async def test_the_gateway_sends_no_unverified_email(make_gateway: GatewayFactory, verified: Any) -> None:
    """email_verified false, absent, or the string "false": the backend's email header is empty, the rest set."""
    facade = await make_gateway(idp={"id_token_claims": {"email_verified": verified}})
    token = (await token_for(facade, scope="openid email profile"))["access_token"]
    async with mcp_client(facade.url + "/mcp", token, {"X-Auth-Request-Email": "root@evil.example"}) as mcp:
        seen = structured(await mcp.call_tool("headers", {}))["headers"]
    assert seen["x-auth-request-user"] == ["demo-user"]
    assert seen["x-auth-request-preferred-username"] == ["demo"]
    assert seen.get("x-auth-request-email", [""]) == [""]


async def test_forward_auth_sends_a_verified_email_and_withholds_an_unverified_one(
        make_facade: FacadeFactory) -> None:
    """Forward-auth's 200 carries the email only for a verified address, otherwise an empty header."""
    answers = {}
    for verified in (True, False):
        facade = await make_facade(resources=RESOURCE, trusted_proxies="127.0.0.1",
                                   idp={"id_token_claims": {"email_verified": verified}})
        token = (await facade.client().signed_in(resource=RESOURCE, scope="openid email"))["access_token"]
        async with facade.http.get(facade.url + "/forward-auth", headers={
                "X-Forwarded-Method": "GET", "X-Forwarded-Host": "mcp.example.com", "X-Forwarded-Proto": "https",
                "X-Forwarded-Uri": "/mcp", "Authorization": f"Bearer {token}"}) as response:
            assert response.status == 200
            answers[verified] = response.headers[identity.EMAIL]
    assert answers == {True: "demo@example.com", False: ""}
