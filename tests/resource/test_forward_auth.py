"""The forward-auth endpoint as nginx, Traefik and Caddy call it (in-process facade, scripted proxy)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy.resource import identity
from tests.conftest import Facade, FacadeFactory

RESOURCE = "https://mcp.example.com/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource/mcp"


@pytest.fixture
async def facade(make_facade: FacadeFactory) -> Facade:
    return await make_facade(resources=f"{RESOURCE} https://other.example.com:8443/tools", trusted_proxies="127.0.0.1",
                             scopes="openid offline_access mcp:deploy mcp:admin",
                             tool_scopes="deploy=mcp:deploy wipe=mcp:admin+mcp:deploy")


async def _ask(facade: Facade, token: str | None, *, method: str = "POST", host: str = "mcp.example.com",
               uri: str = "/mcp", proto: str | None = "https", **extra: str) -> tuple[int, dict[str, str], Any]:
    headers = {"X-Forwarded-Method": method, "X-Forwarded-Host": host, "X-Forwarded-Uri": uri, **extra}
    if proto is not None:
        headers["X-Forwarded-Proto"] = proto
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with facade.http.get(facade.url + "/forward-auth", headers=headers) as response:
        body = await response.read()
        return response.status, dict(response.headers), body


async def test_a_valid_token_is_200_with_every_identity_header(facade: Facade) -> None:
    """2xx carries all five identity headers (email and username as the token's scopes release them);
    the answer is not cacheable; without those scopes the two are present and empty."""
    client = facade.client()
    token = (await client.signed_in(resource=RESOURCE, scope="openid email profile offline_access"))["access_token"]
    status, headers, _ = await _ask(facade, token, **{"Mcp-Method": "tools/list"})
    assert status == 200
    assert headers[identity.USER] == "demo-user" and headers[identity.EMAIL] == "demo@example.com"
    assert headers[identity.USERNAME] == "demo" and headers[identity.CLIENT_ID] == client.client_id
    assert headers[identity.SCOPES] == "openid email profile offline_access"
    assert headers["Cache-Control"] == "no-store"
    plain = (await client.signed_in(resource=RESOURCE, scope="openid"))["access_token"]
    status, headers, _ = await _ask(facade, plain, method="GET")
    assert status == 200 and headers[identity.EMAIL] == "" and headers[identity.USERNAME] == ""


async def test_no_token_is_401_with_the_challenge_and_a_bad_one_invalid_token(facade: Facade) -> None:
    """401 without a token: `resource_metadata` at the facade and the base scope, no error; with a token
    for another resource: invalid_token."""
    status, headers, _ = await _ask(facade, None)
    assert status == 401
    assert headers["WWW-Authenticate"] == (f'Bearer scope="openid email profile", resource_metadata="'
                                           f'{facade.url}{METADATA_PATH}"')
    other = (await facade.client().signed_in(resource="https://other.example.com:8443/tools"))["access_token"]
    status, headers, _ = await _ask(facade, other)
    assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
    status, _, _ = await _ask(facade, other, method="GET", host="other.example.com:8443", uri="/tools/x")
    assert status == 200


@pytest.mark.parametrize(("host", "uri", "proto"), [
    ("evil.example.com", "/mcp", "https"),     # a host no resource is on
    ("mcp.example.com", "/mcpx", "https"),      # a path merely starting like the resource's
    ("mcp.example.com", "/admin", "https"),
    ("mcp.example.com", "/mcp", "http"),        # another scheme than the resource's
    ("mcp.example.com", "/mcp/../admin", "https"),
    ("mcp.example.com", "/mcp/%2e%2e/admin", "https"),
    ("mcp.example.com", "//other.example.com/mcp", "https"),  # urlsplit: host `other...`, path /mcp
])
async def test_requests_for_no_configured_resource_are_403(facade: Facade, host: str, uri: str, proto: str) -> None:
    """The original request is mapped to a configured resource or refused with 403 (nginx passes on only
    401/403), even with a valid token: the audience is never built from headers. A GET, which needs no
    tool scope, so the 403 is the mapping's (`invalid_target` or `invalid_request`), not a missing scope."""
    token = (await facade.client().signed_in(resource=RESOURCE))["access_token"]
    status, headers, body = await _ask(facade, token, method="GET", host=host, uri=uri, proto=proto)
    assert status == 403 and identity.USER not in headers
    assert json.loads(body)["error"] in ("invalid_target", "invalid_request")


@pytest.mark.parametrize(("forwarded", "original"), [("/mcp", "/admin"), ("/admin", "/mcp")])
async def test_disagreeing_forwarded_and_original_uris_are_refused(facade: Facade, forwarded: str,
                                                                   original: str) -> None:
    """nginx's auth_request passes the client's own headers on: a client-sent X-Forwarded-Uri naming the
    resource next to the proxy's X-Original-URI naming another path (either way round) is refused as
    invalid_request, whichever of the two the facade would have read, never judged as the resource."""
    token = (await facade.client().signed_in(resource=RESOURCE))["access_token"]
    status, headers, body = await _ask(facade, token, uri=forwarded, **{"X-Original-URI": original})
    assert status == 403 and identity.USER not in headers
    assert json.loads(body)["error"] == "invalid_request"


async def test_only_trusted_proxies_are_answered(make_facade: FacadeFactory) -> None:
    """From an address outside PROXY_TRUSTED_PROXIES the endpoint answers 403 whatever the headers say."""
    facade = await make_facade(resources=RESOURCE, trusted_proxies="10.0.0.0/8")
    token = (await facade.client().signed_in(resource=RESOURCE))["access_token"]
    status, headers, _ = await _ask(facade, token)
    assert status == 403 and identity.USER not in headers


async def test_per_tool_policy_through_mcp_name(facade: Facade) -> None:
    """`tools/call` of deploy needs mcp:deploy (403 insufficient_scope naming it); wipe needs both; other
    tools pass; a POST without Mcp-Method (earlier revisions) could be any call, so it needs every policy
    scope; GET streams need none."""
    plain = (await facade.client().signed_in(resource=RESOURCE, scope="openid"))["access_token"]
    status, headers, _ = await _ask(facade, plain, **{"Mcp-Method": "tools/call", "Mcp-Name": "deploy"})
    assert status == 403
    assert headers["WWW-Authenticate"].startswith('Bearer error="insufficient_scope"')
    assert 'scope="mcp:deploy"' in headers["WWW-Authenticate"]
    status, headers, _ = await _ask(facade, plain, **{"Mcp-Method": "tools/call", "Mcp-Name": "wipe"})
    assert status == 403 and 'scope="mcp:admin mcp:deploy"' in headers["WWW-Authenticate"]
    status, _, _ = await _ask(facade, plain, **{"Mcp-Method": "tools/call", "Mcp-Name": "whoami"})
    assert status == 200
    status, headers, _ = await _ask(facade, plain)
    assert status == 403 and 'scope="mcp:deploy mcp:admin"' in headers["WWW-Authenticate"]
    status, _, _ = await _ask(facade, plain, method="GET")
    assert status == 200
    deployer = (await facade.client().signed_in(resource=RESOURCE, scope="openid mcp:deploy"))["access_token"]
    status, _, _ = await _ask(facade, deployer, **{"Mcp-Method": "tools/call", "Mcp-Name": "deploy"})
    assert status == 200


async def test_revoked_token_is_refused_at_once(facade: Facade) -> None:
    """A token revoked at /revoke is 401 invalid_token at forward-auth before its exp."""
    client = facade.client()
    token = (await client.signed_in(resource=RESOURCE))["access_token"]
    assert (await _ask(facade, token, method="GET"))[0] == 200
    async with facade.http.post(facade.url + "/revoke", data={"token": token, "client_id": client.client_id}) as r:
        assert r.status == 200
    status, headers, _ = await _ask(facade, token, method="GET")
    assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]


async def test_a_client_cannot_choose_the_path_or_tool_the_policy_judges(facade: Facade) -> None:
    """nginx's auth_request passes the client's own headers on: an X-Forwarded-Uri that disagrees with the
    proxy's X-Original-URI, a routing header sent twice, or `//host/path` (urlsplit reads a host, nginx a
    path) are refused; `tools/call` with no Mcp-Name or another spelling needs every tool scope."""
    plain = (await facade.client().signed_in(resource=RESOURCE, scope="openid"))["access_token"]
    status, _, _ = await _ask(facade, plain, **{"X-Original-URI": "/elsewhere"})
    assert status == 403
    status, _, _ = await _ask(facade, plain, uri="//other.example.com/mcp")
    assert status == 403
    for spelling in ({"Mcp-Method": "tools/call"}, {"Mcp-Method": "Tools/Call", "Mcp-Name": "whoami"}):
        status, headers, _ = await _ask(facade, plain, **spelling)
        assert status == 403 and 'scope="mcp:deploy mcp:admin"' in headers["WWW-Authenticate"], spelling
    headers = [("X-Forwarded-Method", "POST"), ("X-Forwarded-Host", "mcp.example.com"), ("X-Forwarded-Uri", "/mcp"),
               ("X-Forwarded-Proto", "https"), ("Authorization", f"Bearer {plain}"), ("Mcp-Method", "tools/call"),
               ("Mcp-Name", "whoami"), ("Mcp-Name", "deploy")]
    async with facade.http.get(facade.url + "/forward-auth", headers=headers) as response:
        assert response.status == 400
