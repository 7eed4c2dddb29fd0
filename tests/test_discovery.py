"""RFC 8414, OIDC Discovery and RFC 9728 documents, the JWKS, CORS, and health endpoints."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from tests.conftest import Facade, FacadeFactory, start_redis

ENDPOINTS = ("authorization_endpoint", "token_endpoint", "registration_endpoint", "jwks_uri",
             "revocation_endpoint", "userinfo_endpoint", "introspection_endpoint")
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


async def get_json(facade: Facade, path: str) -> tuple[int, Any, dict[str, str]]:
    async with facade.http.get(facade.url + path, allow_redirects=False) as response:
        text = await response.text()
        return response.status, json.loads(text) if response.status == 200 else text, dict(response.headers)


def assert_no_nulls(value: Any) -> None:
    assert value is not None
    if isinstance(value, dict):
        for item in value.values():
            assert_no_nulls(item)
    elif isinstance(value, list):
        for item in value:
            assert_no_nulls(item)


def assert_metadata_rules(metadata: dict[str, Any], issuer: str) -> None:
    """Every rule a strict client applies to AS metadata (strict-clients.md §A)."""
    assert metadata["issuer"] == issuer
    for name in ENDPOINTS:
        if name == "introspection_endpoint" and name not in metadata:
            continue  # advertised only when a resource server may use it (tests/test_resource_servers.py)
        assert metadata[name].startswith(issuer + "/"), name
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert set(metadata["grant_types_supported"]) == {"authorization_code", "refresh_token"}
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {
        "none", "client_secret_basic", "client_secret_post", "private_key_jwt"}  # CIMD on: documents may use keys
    assert metadata["revocation_endpoint_auth_methods_supported"] == metadata["token_endpoint_auth_methods_supported"]
    assert set(metadata["token_endpoint_auth_signing_alg_values_supported"]) == {
        "RS256", "PS256", "ES256", "EdDSA", "Ed25519"}
    assert metadata["id_token_signing_alg_values_supported"] == ["RS256"]
    assert metadata["subject_types_supported"] == ["public"]
    assert {"openid", "offline_access"} <= set(metadata["scopes_supported"])
    assert metadata["authorization_response_iss_parameter_supported"] is True
    for absent in ("dpop_signing_alg_values_supported", "pushed_authorization_request_endpoint"):
        assert absent not in metadata
    assert_no_nulls(metadata)


@pytest.mark.parametrize("path", [
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server/mcp",
    "/.well-known/openid-configuration/mcp",
])
async def test_metadata_is_served_at_every_path_clients_try(facade: Facade, path: str) -> None:
    """RFC 8414 §3, OIDC Discovery §4 and the MCP-path variants Claude clients fetch."""
    status, metadata, headers = await get_json(facade, path)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert_metadata_rules(metadata, facade.url)


async def test_issuer_is_byte_for_byte_the_setting_even_with_odd_case(make_facade: FacadeFactory) -> None:
    """The issuer is not normalised (pydantic would lower-case the host and append a slash)."""
    facade = await make_facade()
    status, metadata, _ = await get_json(facade, "/.well-known/oauth-authorization-server")
    assert status == 200
    assert json.dumps(metadata["issuer"]) == json.dumps(facade.settings.issuer)


async def test_issuer_with_a_path_serves_inserted_and_appended_forms(make_facade: FacadeFactory) -> None:
    """RFC 8414 §3.1 inserts the path after /.well-known; OIDC appends the well-known to the issuer."""
    facade = await make_facade()
    # Same port, a path issuer: build a second facade on the issuer with /auth.
    path_facade = await make_facade(issuer=facade.url.replace("127.0.0.1", "localhost") + "/auth")
    base = str(path_facade.server.make_url("")).rstrip("/")
    for path in ("/.well-known/oauth-authorization-server/auth", "/auth/.well-known/openid-configuration",
                 "/.well-known/openid-configuration/auth"):
        async with path_facade.http.get(base + path) as response:
            assert response.status == 200, path
            metadata = await response.json()
        assert metadata["issuer"] == path_facade.settings.issuer
        assert metadata["token_endpoint"] == path_facade.settings.issuer + "/token"
    async with path_facade.http.get(base + "/auth/jwks") as response:
        assert response.status == 200


async def test_protected_resource_metadata_names_the_resource_and_this_server(facade: Facade) -> None:
    """RFC 9728 §3: resource exactly the configured URL, authorization_servers = [issuer]."""
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        status, document, _ = await get_json(facade, path)
        assert status == 200
        assert document["resource"] == facade.url + "/mcp"
        assert document["authorization_servers"] == [facade.url]
        assert_no_nulls(document)


async def test_each_configured_resource_gets_its_own_document(make_facade: FacadeFactory) -> None:
    """RFC 9728 §3.1: each PROXY_RESOURCES entry has its own protected-resource document at the path-inserted
    well-known URL."""
    facade = await make_facade(resources="https://mcp.example.com/mcp https://tools.example.com/v1/sse")
    _, first, _ = await get_json(facade, "/.well-known/oauth-protected-resource/mcp")
    _, second, _ = await get_json(facade, "/.well-known/oauth-protected-resource/v1/sse")
    assert first["resource"] == "https://mcp.example.com/mcp"
    assert second["resource"] == "https://tools.example.com/v1/sse"


async def test_unserved_well_known_is_404_not_a_redirect(facade: Facade) -> None:
    """Clients fall back to the next URL on 4xx; a 3xx or 5xx stops them (strict-clients.md A1, A10)."""
    status, _, _ = await get_json(facade, "/.well-known/oauth-protected-resource/other")
    assert status == 404


async def test_jwks_serves_public_keys_only_with_kid_alg_use(facade: Facade) -> None:
    """RFC 7517: /jwks lists the signing keys with kid, alg, use and kty, and no private member."""
    status, jwks, _ = await get_json(facade, "/jwks")
    assert status == 200
    assert jwks["keys"]
    for key in jwks["keys"]:
        assert not PRIVATE_JWK_MEMBERS & set(key)
        assert key["kid"] and key["alg"] == "RS256" and key["use"] == "sig" and key["kty"] == "RSA"


async def test_metadata_jwks_uri_points_at_the_served_jwks(facade: Facade) -> None:
    """RFC 8414 §2: the advertised jwks_uri is served and holds keys."""
    _, metadata, _ = await get_json(facade, "/.well-known/openid-configuration")
    path = urlsplit(metadata["jwks_uri"]).path
    status, jwks, _ = await get_json(facade, path)
    assert status == 200 and jwks["keys"]


@pytest.mark.parametrize("path", ["/.well-known/oauth-authorization-server", "/jwks", "/token", "/register",
                                  "/revoke"])
async def test_cors_preflight_is_answered_for_browser_clients(facade: Facade, path: str) -> None:
    """Browser-based MCP clients (Inspector) preflight with MCP-Protocol-Version."""
    headers = {"Origin": "https://inspector.example", "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "content-type, mcp-protocol-version"}
    async with facade.http.options(facade.url + path, headers=headers) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "mcp-protocol-version" in response.headers["Access-Control-Allow-Headers"]


async def test_cors_header_on_discovery_and_error_answers(facade: Facade) -> None:
    """Browser-based clients read metadata and /token errors: both carry Access-Control-Allow-Origin: *."""
    _, _, headers = await get_json(facade, "/.well-known/oauth-authorization-server")
    assert headers["Access-Control-Allow-Origin"] == "*"
    async with facade.http.post(facade.url + "/token", data={"grant_type": "nope"}) as response:
        assert response.status == 400
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.headers["Access-Control-Expose-Headers"] == "WWW-Authenticate"


async def test_health_and_readiness(facade: Facade) -> None:
    """/healthz and /readyz answer 200 on a healthy facade."""
    assert (await get_json(facade, "/healthz"))[0] == 200
    assert (await get_json(facade, "/readyz"))[0] == 200


async def test_readiness_follows_a_real_redis_going_away_and_back(make_facade: FacadeFactory) -> None:
    """/readyz is 503 while redis-server is down and 200 again once it is back."""
    server = start_redis()
    client = aioredis.Redis.from_url(server.url, decode_responses=True, socket_timeout=1,
                                     socket_connect_timeout=1)
    try:
        facade = await make_facade(redis=client)
        assert (await get_json(facade, "/readyz"))[0] == 200
        server.process.terminate()
        server.process.wait(timeout=10)
        status, _, headers = await get_json(facade, "/readyz")
        assert status == 503
        assert headers["Retry-After"]
        server = start_redis(server.port)
        assert (await get_json(facade, "/readyz"))[0] == 200
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)
        await client.aclose()
