"""Issue 22 finding 8, the hardening list: what a client sends cannot stand in for what the gateway or the
proxy vouches for, a backend cannot set cookies on the facade's origin unless the operator says so,
per-tool policy cannot be dodged by spelling a method or tool name another way, forward-auth answers no
plain OPTIONS request 200, the ASGI middleware's public paths are judged normalised, and a machine
client's `sub` never equals a user's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from joserfc import jwt

from tests.clients.test_preregistered import SECRET, clients_file, form_basic
from tests.conftest import Facade, FacadeFactory
from tests.resource.conftest import GatewayFactory, token_for
from tests.resource.test_verifier_asgi import App, bearer, call, guard
from tests.resource.tokens import make_minter

JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
CLIENT_SENT = {"X-Real-IP": "10.6.6.6", "True-Client-IP": "10.6.6.6", "X-Forwarded-Port": "8443",
               "X-Forwarded-Prefix": "/admin", "X-Original-URL": "/admin", "X-Original-URI": "/admin",
               "X-Rewrite-URL": "/admin", "X-Forwarded-Server": "evil.example", "X-Client-IP": "10.6.6.6",
               "X-Cluster-Client-IP": "10.6.6.6", "CF-Connecting-IP": "10.6.6.6", "Fastly-Client-IP": "10.6.6.6",
               "X-Forwarded-Ssl": "on", "X-Url-Scheme": "https", "X-Forwarded-Scheme": "https"}


async def _echo(facade: Facade, token: str, headers: dict[str, str]) -> dict[str, list[str]]:
    async with facade.http.post(facade.url + "/echo", data="{}", headers={
            **JSON, **headers, "Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200
        return dict((await response.json())["headers"])


async def test_the_gateway_strips_client_sent_addressing_headers(make_gateway: GatewayFactory) -> None:
    """X-Real-IP, True-Client-IP, X-Forwarded-Port/-Prefix, X-Original-URL and kin, as the client sent them,
    never reach the backend (frameworks believe them for the client's address, scheme and path)."""
    facade = await make_gateway()
    token = (await token_for(facade, "/echo"))["access_token"]
    seen = await _echo(facade, token, CLIENT_SENT)
    assert sorted(name for name in seen if name in {n.lower() for n in CLIENT_SENT}) == []
    assert seen["x-forwarded-for"] == ["127.0.0.1"]


@pytest.fixture
async def cookie_backend(aiohttp_server: Any) -> str:
    async def handler(request: web.Request) -> web.Response:
        response = web.json_response({"ok": True})
        response.set_cookie("session", "from-backend", path="/")
        response.headers.add("Set-Cookie", "other=1; Path=/")
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await aiohttp_server(app, host="127.0.0.1")
    return f"http://127.0.0.1:{server.port}/cookie"


@pytest.mark.parametrize("passed", [False, True])
async def test_a_backends_set_cookie_reaches_the_client_only_when_configured(
        make_gateway: GatewayFactory, cookie_backend: str, passed: bool) -> None:
    """The gateway answers on the facade's own origin: a backend's Set-Cookie would set cookies there (the
    consent and sign-in cookies live there). Dropped by default; PROXY_GATEWAY_BACKEND_COOKIES=on passes it."""
    facade = await make_gateway(routes={"/cookie": cookie_backend}, gateway_backend_cookies=passed)
    token = (await token_for(facade, "/cookie"))["access_token"]
    async with facade.http.post(facade.url + "/cookie", data="{}", headers={
            **JSON, "Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200 and await response.json() == {"ok": True}
        cookies = response.headers.getall("Set-Cookie", [])
    expected = ["other=1; Path=/", "session=from-backend; Path=/"] if passed else []
    assert sorted(cookies) == expected


def _call(method: str, name: str) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"name": name, "arguments": {}}})


@pytest.mark.parametrize(("method", "name"), [
    ("Tools/Call", "deploy"), ("TOOLS/CALL", "deploy"), ("tools/call", "Deploy"), ("tools/call", "DEPLOY"),
    ("tools/call", "ｄｅｐｌｏｙ"), ("ｔｏｏｌｓ/ｃａｌｌ", "deploy"),
])
async def test_gateway_tool_policy_fails_closed_for_other_spellings(make_gateway: GatewayFactory, method: str,
                                                                      name: str) -> None:
    """A server that folds case or Unicode compatibility forms would run `deploy` for these: without the
    tool's scope they are 403 insufficient_scope naming it, as the exact spelling is; an unrelated tool
    still needs nothing."""
    facade = await make_gateway(scopes="openid offline_access mcp:deploy",
                                tool_scopes="deploy=mcp:deploy")
    token = (await token_for(facade, "/echo", scope="openid"))["access_token"]
    for sent, expected in ((_call(method, name), 403), (_call("tools/call", "deploy"), 403),
                           (_call("tools/call", "deploy-docs"), 200)):
        async with facade.http.post(facade.url + "/echo", data=sent, headers={
                **JSON, "Authorization": f"Bearer {token}"}) as response:
            assert response.status == expected, sent
            if expected == 403:
                assert 'scope="mcp:deploy"' in response.headers["WWW-Authenticate"]


async def test_forward_auth_answers_200_to_a_cors_preflight_only(make_facade: FacadeFactory) -> None:
    """An OPTIONS request that is not a CORS preflight (no Origin and Access-Control-Request-Method) is a
    request like any other: 401 without a token. A real preflight carries no credentials (Fetch §4.8)."""
    facade = await make_facade(resources="https://mcp.example.com/mcp", trusted_proxies="127.0.0.1")
    forwarded = {"X-Forwarded-Method": "OPTIONS", "X-Forwarded-Host": "mcp.example.com",
                 "X-Forwarded-Proto": "https", "X-Forwarded-Uri": "/mcp"}
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
    for extra, expected in (({}, 401), ({"Origin": "https://app.example.com"}, 401), (preflight, 200)):
        async with facade.http.get(facade.url + "/forward-auth", headers={**forwarded, **extra}) as response:
            assert response.status == expected, extra


@pytest.mark.parametrize("path", ["/.well-known/oauth-protected-resource/../../mcp",
                                  "/.well-known/oauth-protected-resource/%2e%2e/mcp",
                                  "/.well-known/oauth-protected-resource/./../admin",
                                  "/.well-known/oauth-protected-resource/..//mcp"])
async def test_the_asgi_middleware_judges_public_paths_normalised(path: str) -> None:
    """A path that only looks public (it climbs out of the public prefix with dot segments, as a router
    or proxy resolving them would route it) needs a token; the public document itself does not."""
    minter = make_minter("RS256")
    app = App()
    middleware = guard(minter, app)
    scope_path = path.replace("%2e", ".")  # ASGI servers hand the app the percent-decoded path
    assert (await call(middleware, method="GET", path=scope_path)).status == 401
    assert (await call(middleware, method="GET", path=scope_path, headers=[bearer(minter.mint())])).status == 200
    assert (await call(middleware, method="GET", path="/.well-known/oauth-protected-resource/mcp")).status == 200


async def test_a_machine_clients_sub_cannot_be_a_users(make_facade: FacadeFactory, tmp_path: Path) -> None:
    """client_credentials tokens carry `sub` in a namespace of their own (`client:<id>`); an upstream user
    whose IdP `sub` falls in that namespace cannot sign in (it would be that machine client downstream)."""
    facade = await make_facade(clients_file=str(clients_file(tmp_path)))
    client = facade.client()
    status, body, _ = await client.token({"grant_type": "client_credentials"},
                                         {"Authorization": form_basic("reporting-job", SECRET)})
    assert status == 200, body
    claims = jwt.decode(body["access_token"], await client.jwks()).claims
    assert claims["sub"] == "client:reporting-job" and claims["client_id"] == "reporting-job"
    reserved = await make_facade(idp={"id_token_claims": {"sub": "client:reporting-job"}})
    user = reserved.client()
    await user.register()
    refused = await user.authorize()
    assert refused.params.get("error") == "access_denied" and "code" not in refused.params
    assert await facade.client().signed_in() is not None  # an ordinary user signs in as before
