"""Access policy beyond scopes (PROXY_POLICY_FILE): one TOML file, the same decision at the gateway (with
the real MCP SDK server behind it), at forward-auth and in the Python verifier, 403 `access_denied`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from proxy.access_policy import PolicyFileError, parse_policy, token_attributes
from proxy.resource.asgi import BearerAuth
from proxy.resource.verifier import FacadeTokenVerifier
from proxy.settings import SettingsError
from tests.conftest import Facade
from tests.resource.conftest import GatewayFactory, mcp_client, structured, token_for, tool_text
from tests.resource.test_core import parse_bearer
from tests.resource.test_verifier_asgi import App, call

POLICY = """
filter_tools_list = true

[[rule]]
name = "company"
email_domains = ["example.com"]

[[rule]]
name = "deployers"
tools = ["deploy"]
groups = ["ops"]
"""


def as_user(facade: Facade, sub: str, **claims: Any) -> None:
    """The dev IdP signs the next sign-ins in as `sub`, with `claims` in its id_token."""
    facade.idp_config.id_token_claims.clear()
    facade.idp_config.id_token_claims.update({"sub": sub, **claims})


@pytest.fixture
async def gateway(make_gateway: GatewayFactory, tmp_path: Path) -> Facade:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    return await make_gateway(policy_file=str(policy), trusted_proxies="127.0.0.1")


async def post(facade: Facade, message: dict[str, Any], token: str) -> tuple[int, str, dict[str, str]]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream"}
    async with facade.http.post(facade.url + "/mcp", data=json.dumps(message), headers=headers) as response:
        return response.status, await response.text(), dict(response.headers)


def tools_call(name: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": {"target": "x"}}}


async def test_the_gateway_enforces_tool_rules_and_filters_tools_list(gateway: Facade) -> None:
    """Through the gateway to the SDK server: a user outside the `ops` group calls `headers` but `deploy`
    is 403 `access_denied` naming the rule (no scope in the challenge: no scope would help), and the SDK
    client's tools/list does not show deploy; a user in `ops` sees and calls it."""
    as_user(gateway, "dev-user", email="dev@example.com", email_verified=True)
    plain = (await token_for(gateway))["access_token"]
    async with mcp_client(gateway.url + "/mcp", plain) as client:
        assert structured(await client.call_tool("headers", {}))["headers"]["x-auth-request-user"] == ["dev-user"]
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert "headers" in names and "deploy" not in names
    status, text, headers = await post(gateway, tools_call("deploy"), plain)
    assert status == 403 and json.loads(text)["error"] == "access_denied"
    challenge = parse_bearer(headers["WWW-Authenticate"])
    assert challenge["error"] == "access_denied" and "deployers" in challenge["error_description"]
    assert "scope" not in challenge and challenge["resource_metadata"].endswith("/oauth-protected-resource/mcp")

    as_user(gateway, "ops-user", email="ops@example.com", email_verified=True, groups=["ops"])
    ops = (await token_for(gateway))["access_token"]
    async with mcp_client(gateway.url + "/mcp", ops) as client:
        assert "deploy" in {tool.name for tool in (await client.list_tools()).tools}
        assert tool_text(await client.call_tool("deploy", {"target": "prod"})) == "deployed prod"


async def test_a_resource_wide_rule_needs_a_verified_email_of_the_domain(gateway: Facade) -> None:
    """The `company` rule covers every request: an unverified example.com address or another domain is 403
    even for initialize; the access token carries only the domain, never the address."""
    for claims in ({"email": "eve@example.com", "email_verified": False}, {"email": "eve@other.org",
                                                                          "email_verified": True}):
        as_user(gateway, "eve", **claims)
        body = await token_for(gateway)
        initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        status, text, _ = await post(gateway, initialize, body["access_token"])
        assert status == 403 and "company" in json.loads(text)["error_description"]
        assert "eve@" not in body["access_token"] and "eve@" not in json.dumps(_payload(body["access_token"]))


def _payload(token: str) -> dict[str, Any]:
    import base64

    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


async def test_gateway_forward_auth_and_the_python_verifier_decide_alike(gateway: Facade) -> None:
    """The same tokens and calls, judged by the gateway, by forward-auth (Mcp-Method/Mcp-Name headers, as a
    proxy forwards them) and by `BearerAuth(access_policy=...)` with the facade's JWKS: every decision is
    the same, and a POST whose call forward-auth cannot see is judged by every tool rule (fail closed)."""
    from proxy.access_policy import load_policy

    policy = load_policy(Path(gateway.settings.policy_file or ""))
    verifier = FacadeTokenVerifier(issuer=gateway.url, resource=gateway.url + "/mcp")
    app = App()
    inside = BearerAuth(app, verifier=verifier, access_policy=policy)
    tokens = {}
    for sub, claims in (("dev", {"email": "dev@example.com", "email_verified": True}),
                        ("ops", {"email": "ops@example.com", "email_verified": True, "groups": ["ops"]}),
                        ("out", {"email": "out@other.org", "email_verified": True, "groups": ["ops"]})):
        as_user(gateway, sub, **claims)
        tokens[sub] = (await token_for(gateway))["access_token"]
    decisions: dict[tuple[str, str], tuple[int | str, ...]] = {}
    for sub, token in tokens.items():
        for tool in ("headers", "deploy"):
            through_gateway, _, _ = await post(gateway, tools_call(tool), token)
            headers = {"X-Forwarded-Method": "POST", "X-Forwarded-Host": gateway.url.removeprefix("http://"),
                       "X-Forwarded-Uri": "/mcp", "X-Forwarded-Proto": "http", "Authorization": f"Bearer {token}",
                       "Mcp-Method": "tools/call", "Mcp-Name": tool}
            async with gateway.http.get(gateway.url + "/forward-auth", headers=headers) as response:
                forward = response.status
            answer = await call(inside, headers=[("Authorization", f"Bearer {token}")],
                                body=json.dumps(tools_call(tool)).encode())
            # The gateway's admitted call reaches the SDK server, which answers it (400: no MCP session).
            decisions[(sub, tool)] = tuple("allowed" if status not in (401, 403) else status
                                           for status in (through_gateway, forward, answer.status))
            if answer.status == 403:
                assert parse_bearer(answer.headers["www-authenticate"])["error"] == "access_denied"
    allowed, denied = ("allowed",) * 3, (403,) * 3
    assert decisions == {("dev", "headers"): allowed, ("dev", "deploy"): denied, ("ops", "headers"): allowed,
                         ("ops", "deploy"): allowed, ("out", "headers"): denied, ("out", "deploy"): denied}
    blind = {"X-Forwarded-Method": "POST", "X-Forwarded-Host": gateway.url.removeprefix("http://"),
             "X-Forwarded-Uri": "/mcp", "X-Forwarded-Proto": "http", "Authorization": f"Bearer {tokens['dev']}"}
    async with gateway.http.get(gateway.url + "/forward-auth", headers=blind) as response:
        assert response.status == 403  # could be a tools/call of deploy


def test_token_attributes_take_only_a_verified_domain_and_the_groups() -> None:
    """The domain only of a verified email (a string "true" counts, as some IdPs send it), groups from
    `groups`, `roles` and Clerk's organisation claims, and the client kind; nothing else of the user."""
    attributes = token_attributes({"email": "A@Example.COM", "email_verified": "true", "name": "A",
                                   "groups": ["ops"], "roles": "admin", "org_slug": "acme"}, "dcr")
    assert attributes == {"client_kind": "dcr", "email_domain": "example.com", "groups": ["ops", "admin", "acme"]}
    assert token_attributes({"email": "a@example.com", "email_verified": False}, "cimd") == {"client_kind": "cimd"}


@pytest.mark.parametrize(("text", "problem"), [
    ("[[rule]]\ntools = ['deploy']\n", "names nobody"),
    ("[[rule]]\ngroups = ['ops']\ncolour = 'red'\n", "unknown keys colour"),
    ("[[rule]]\nclient_kinds = ['robot']\n", "client_kinds are"),
    ("[[rule]]\ngroups = []\n", "non-empty list"),
    ("[[rule]]\nresource = 'https://elsewhere.example/mcp'\ngroups = ['ops']\n", "not a protected resource"),
    ("filter_tools_list = 'yes'\n", "true or false"),
    ("[[rule]\n", "not TOML"),
])
def test_a_bad_policy_file_says_what_is_wrong(text: str, problem: str) -> None:
    """Each mistake is refused with a message naming it, before the facade serves."""
    with pytest.raises(PolicyFileError, match=problem):
        parse_policy(text, resources=["https://mcp.example.com/mcp"])


async def test_the_facade_refuses_to_start_with_a_bad_policy_file(make_gateway: GatewayFactory,
                                                                  tmp_path: Path) -> None:
    """A policy file that cannot be used stops the start with an error naming PROXY_POLICY_FILE."""
    bad = tmp_path / "policy.toml"
    bad.write_text("[[rule]]\ntools = ['deploy']\n")
    with pytest.raises(SettingsError, match="PROXY_POLICY_FILE"):
        await make_gateway(policy_file=str(bad))


async def test_behind_nginx_forward_auth_enforces_the_same_rules(make_facade: Any, sdk_backend: str,
                                                                 tmp_path: Path) -> None:
    """nginx (docs/nginx.conf, auth_request) -> forward-auth -> the SDK server: the SDK client of a user
    outside `ops` calls `headers`; a `tools/call` of deploy comes back from nginx as 403 with the facade's
    `access_denied` challenge; a user in `ops` deploys through nginx."""
    import aiohttp

    from tests.conftest import free_port
    from tests.resource.test_proxies import nginx

    port = free_port()
    proxy = f"http://127.0.0.1:{port}"
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    facade = await make_facade(resources=proxy + "/mcp", trusted_proxies="127.0.0.1", policy_file=str(policy))
    with nginx(port, facade.url.removeprefix("http://"), sdk_backend.removeprefix("http://")):
        as_user(facade, "dev-user", email="dev@example.com", email_verified=True)
        plain = (await facade.client().signed_in(resource=proxy + "/mcp"))["access_token"]
        async with mcp_client(proxy + "/mcp", plain) as client:
            assert structured(await client.call_tool("headers", {}))["headers"]["x-auth-request-user"] == ["dev-user"]
        headers = {"Authorization": f"Bearer {plain}", "Content-Type": "application/json",
                   "Accept": "application/json, text/event-stream", "Mcp-Method": "tools/call", "Mcp-Name": "deploy"}
        async with aiohttp.ClientSession() as http, http.post(proxy + "/mcp", data=json.dumps(tools_call("deploy")),
                                                              headers=headers) as response:
            assert response.status == 403
            challenge = parse_bearer(response.headers["WWW-Authenticate"])
        assert challenge["error"] == "access_denied" and "deployers" in challenge["error_description"]
        as_user(facade, "ops-user", email="ops@example.com", email_verified=True, groups=["ops"])
        ops = (await facade.client().signed_in(resource=proxy + "/mcp"))["access_token"]
        async with mcp_client(proxy + "/mcp", ops) as client:
            assert tool_text(await client.call_tool("deploy", {"target": "prod"})) == "deployed prod"


def test_the_documented_example_policy_is_valid() -> None:
    """docs/policy.toml, the README's example, loads: two rules, tools/list filtering on."""
    from proxy.access_policy import load_policy

    example = Path(__file__).resolve().parents[2] / "docs" / "policy.toml"
    policy = load_policy(example, resources=["https://mcp.example.com/mcp"])
    assert [rule.name for rule in policy.rules] == ["company", "deployers"] and policy.filter_tools_list
