"""Gateway mode through real parts: the MCP SDK's client -> the facade's gateway -> the SDK's server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from proxy.resource import identity
from tests.conftest import Facade, free_port
from tests.resource.conftest import GatewayFactory, backend_log, mcp_client, structured, token_for, tool_text


def _challenge(response: aiohttp.ClientResponse) -> str:
    return response.headers.get("WWW-Authenticate", "")


async def _post(facade: Facade, path: str, body: Any, token: str | None, **headers: str
                ) -> tuple[int, dict[str, Any] | str, aiohttp.ClientResponse]:
    sent = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    async with facade.http.post(facade.url + path, data=data, headers=sent) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text), response
        except ValueError:
            return response.status, text, response


async def test_sdk_client_streams_a_long_result_and_a_progress_notification(gateway: Facade) -> None:
    """The SDK client, holding a facade token, calls the SDK server through the gateway: a 300 kB tool
    result arrives whole and the progress notification sent on the same SSE stream reaches the client."""
    token = (await token_for(gateway))["access_token"]
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with mcp_client(gateway.url + "/mcp", token) as client:
        result = await client.call_tool("long_result", {"size": 300_000, "progress": True},
                                        progress_callback=on_progress)
        text = tool_text(result)
    assert len(text) == 300_000 and text.startswith("0123456789abcdef")
    assert progress == [(0.5, 1.0, "halfway")]


async def test_backend_never_sees_the_token_cookies_or_a_spoofed_identity(gateway: Facade) -> None:
    """A client sending its own identity headers (any spelling, any member of the prefix), a cookie and
    its token: the backend gets none of them, only the identity the token proves, each header once."""
    client = gateway.client()
    body = await client.signed_in(resource=gateway.url + "/mcp", scope="openid email profile offline_access")
    spoofed = {"X-Auth-Request-User": "admin", "x-auth-request-email": "root@evil.example",
               "X-Auth-Request-Groups": "admins", "X-AUTH-REQUEST-SCOPES": "everything", "Cookie": "session=1",
               "X_Auth_Request_User": "admin"}  # the spelling CGI/WSGI backends read as the same header
    async with mcp_client(gateway.url + "/mcp", body["access_token"], spoofed) as mcp:
        seen = structured(await mcp.call_tool("headers", {}))["headers"]
    assert "authorization" not in seen and "cookie" not in seen
    assert "x-auth-request-groups" not in seen and "x_auth_request_user" not in seen
    assert seen["x-auth-request-user"] == ["demo-user"]
    assert seen["x-auth-request-email"] == ["demo@example.com"]
    assert seen["x-auth-request-preferred-username"] == ["demo"]
    assert seen["x-auth-request-client-id"] == [client.client_id]
    assert seen["x-auth-request-scopes"] == ["openid email profile offline_access"]
    assert seen["mcp-method"] == ["tools/call"] and seen["mcp-name"] == ["headers"]
    assert "mcp-protocol-version" in seen
    assert not [name for name in seen if name.startswith("x-auth-request-") and name.title()
                not in [n.title() for n in identity.NAMES]]


async def _answered(gateway: Facade, token: str) -> int:
    """The status of an MCP `initialize` through the gateway: 200 when the token is admitted."""
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}}
    status, _, _ = await _post(gateway, "/mcp", initialize, token)
    return status


async def test_revocation_is_seen_by_the_gateway_before_exp(gateway: Facade) -> None:
    """A token revoked at /revoke, and every token of a family whose refresh token is revoked, is refused
    at once (401 invalid_token) although its `exp` is an hour away; an unrevoked one still passes: 200
    from the backend (/echo answers any request)."""
    client = gateway.client()
    first = await client.signed_in(resource=gateway.url + "/echo")
    second = await client.signed_in(resource=gateway.url + "/echo")
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    for body in (first, second):
        status, _, _ = await _post(gateway, "/echo", ping, body["access_token"])
        assert status == 200

    async with gateway.http.post(gateway.url + "/revoke", data={"token": first["access_token"],
                                                                "client_id": client.client_id}) as response:
        assert response.status == 200
    status, answer, response = await _post(gateway, "/echo", ping, first["access_token"])
    assert status == 401 and 'error="invalid_token"' in _challenge(response), answer

    status, _, _ = await _post(gateway, "/echo", ping, second["access_token"])
    assert status == 200
    async with gateway.http.post(gateway.url + "/revoke", data={"token": second["refresh_token"],
                                                                "client_id": client.client_id}) as response:
        assert response.status == 200
    status, _, response = await _post(gateway, "/echo", ping, second["access_token"])
    assert status == 401 and 'error="invalid_token"' in _challenge(response)


async def test_challenges_without_token_with_a_bad_one_and_for_another_resource(gateway: Facade) -> None:
    """401 without a token names resource_metadata and scope and no error; a forged token and a token
    minted for another resource (RFC 8707 audience) are 401 invalid_token; no request reaches the backend
    (the tool list is never answered)."""
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    status, _, response = await _post(gateway, "/mcp", listing, None)
    metadata = gateway.url + "/.well-known/oauth-protected-resource/mcp"
    assert status == 401
    assert _challenge(response) == f'Bearer scope="openid email profile", resource_metadata="{metadata}"'
    assert response.headers["Cache-Control"] == "no-store"

    status, _, response = await _post(gateway, "/mcp", listing, "not.a.token")
    assert status == 401 and 'error="invalid_token"' in _challenge(response)
    assert f'resource_metadata="{metadata}"' in _challenge(response)

    other = (await token_for(gateway, "/events"))["access_token"]
    status, answer, response = await _post(gateway, "/mcp", listing, other)
    assert status == 401 and 'error="invalid_token"' in _challenge(response), answer
    assert "aud" in str(answer)


async def test_routing_headers_that_disagree_with_the_body_are_400(gateway: Facade) -> None:
    """Mcp-Method/Mcp-Name that disagree with the JSON-RPC body, a duplicated routing header, or a body with
    a duplicated key (parsers disagree on which copy wins) are 400 with JSON-RPC error -32020/-32700,
    and never forwarded; agreeing ones are (the backend answers)."""
    token = (await token_for(gateway))["access_token"]
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "deploy", "arguments": {}}}
    status, answer, _ = await _post(gateway, "/mcp", call, token, **{"Mcp-Method": "tools/list"})
    assert status == 400 and answer["error"]["code"] == -32020 and answer["id"] == 7, answer
    status, answer, _ = await _post(gateway, "/mcp", call, token, **{"Mcp-Method": "tools/call",
                                                                    "Mcp-Name": "headers"})
    assert status == 400 and answer["error"]["code"] == -32020, answer
    duplicated = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"headers","name":"deploy"}}'
    status, answer, _ = await _post(gateway, "/mcp", duplicated, token)
    assert status == 400 and answer["error"]["code"] == -32700, answer
    async with gateway.http.post(gateway.url + "/mcp", data=json.dumps(call), headers=[
            ("Authorization", f"Bearer {token}"), ("Content-Type", "application/json"),
            ("Mcp-Method", "tools/call"), ("Mcp-Method", "tools/call")]) as response:
        assert response.status == 400 and (await response.json())["error"]["code"] == -32020
    status, answer, _ = await _post(gateway, "/mcp", b"{not json", token)
    assert status == 400 and answer["error"]["code"] == -32700


async def test_per_tool_scope_policy_answers_403_insufficient_scope(make_gateway: GatewayFactory) -> None:
    """With PROXY_TOOL_SCOPES deploy=mcp:deploy, a token without that scope may call other tools but a
    `tools/call` of deploy is 403 with `error="insufficient_scope", scope="mcp:deploy"` and the metadata
    URL; a token carrying the scope calls it. The 401 challenge does not name the step-up scope."""
    facade = await make_gateway(scopes="openid offline_access mcp:deploy", tool_scopes="deploy=mcp:deploy")
    plain = (await token_for(facade, scope="openid offline_access"))["access_token"]
    async with mcp_client(facade.url + "/mcp", plain) as client:
        assert structured(await client.call_tool("headers", {}))["headers"]["x-auth-request-user"] == ["demo-user"]
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "deploy",
                                                                           "arguments": {"target": "prod"}}}
    status, answer, response = await _post(facade, "/mcp", call, plain)
    metadata = facade.url + "/.well-known/oauth-protected-resource/mcp"
    assert status == 403, answer
    challenge = _challenge(response)
    assert challenge.startswith('Bearer error="insufficient_scope"'), challenge
    assert 'scope="mcp:deploy"' in challenge and f'resource_metadata="{metadata}"' in challenge
    status, _, response = await _post(facade, "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"}, None)
    assert status == 401 and 'scope="openid email profile"' in _challenge(response)

    allowed = (await token_for(facade, scope="openid mcp:deploy"))["access_token"]
    async with mcp_client(facade.url + "/mcp", allowed) as client:
        assert tool_text(await client.call_tool("deploy", {"target": "prod"})) == "deployed prod"


async def test_backend_outage_is_502_and_a_slow_backend_504(make_gateway: GatewayFactory) -> None:
    """A backend nobody listens on answers 502 `backend_unavailable`; one that sends no headers within
    PROXY_GATEWAY_TIMEOUT_S answers 504 `backend_timeout`; both JSON."""
    facade = await make_gateway(routes={"/down": f"http://127.0.0.1:{free_port()}/mcp"}, gateway_timeout_s=0.5)
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    token = (await token_for(facade, "/down"))["access_token"]
    status, answer, _ = await _post(facade, "/down", ping, token)
    assert status == 502 and answer["error"] == "backend_unavailable", answer
    token = (await token_for(facade, "/slow"))["access_token"]
    status, answer, _ = await _post(facade, "/slow", ping, token)
    assert status == 504 and answer["error"] == "backend_timeout", answer


async def test_sse_stream_is_unbuffered_and_a_client_disconnect_reaches_the_backend(
        gateway: Facade, sdk_backend: str) -> None:
    """A GET SSE stream (20 events a second for 100 s) arrives event by event through the gateway, and
    when the client closes it, the backend's stream ends with `client disconnected`."""
    token = (await token_for(gateway, "/events"))["access_token"]
    before = len(await backend_log(sdk_backend))
    async with aiohttp.ClientSession() as http:
        response = await http.get(gateway.url + "/events", headers={"Authorization": f"Bearer {token}",
                                                                     "Accept": "text/event-stream"})
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
        events = []
        async with asyncio.timeout(10):
            while len(events) < 3:
                line = (await response.content.readline()).decode().strip()
                if line.startswith("data:"):
                    events.append(line)
        assert events == ["data: 0", "data: 1", "data: 2"]
        response.close()
    async with asyncio.timeout(10):
        while True:
            entries = (await backend_log(sdk_backend))[before:]
            if entries and entries[-1]["ended"] is not None:
                break
            await asyncio.sleep(0.2)
    assert entries[-1]["ended"] == "client disconnected"
    assert entries[-1]["sent"] < 2000


async def test_a_chunked_answer_arrives_whole(gateway: Facade) -> None:
    """A chunked (no Content-Length) backend answer is relayed byte for byte."""
    token = (await token_for(gateway, "/chunks"))["access_token"]
    async with gateway.http.post(gateway.url + "/chunks", data=b"{}", headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"}) as response:
        assert response.status == 200
        assert await response.read() == b"chunk0;chunk1;chunk2;chunk3;chunk4;"


@pytest.mark.parametrize("path", ["/.well-known/oauth-protected-resource/mcp",
                                  "/.well-known/oauth-protected-resource/events"])
async def test_protected_resource_metadata_of_gateway_resources(gateway: Facade, path: str) -> None:
    """RFC 9728 §3.1: each gateway resource's metadata at the path-inserted URL names that resource and
    the facade; the root document answers too."""
    async with gateway.http.get(gateway.url + path) as response:
        document = await response.json()
    assert document["resource"] == gateway.url + path.rsplit("/", 1)[1].join(["/", ""])
    assert document["authorization_servers"] == [gateway.url]
    async with gateway.http.get(gateway.url + "/.well-known/oauth-protected-resource") as response:
        assert response.status == 200 and (await response.json())["resource"].startswith(gateway.url)


def test_compose_gateway_points_at_the_mcp_service() -> None:
    """docker-compose.yml: the facade's gateway backend is the `mcp` service's port, which is not published,
    and the demo server it runs is this package's (python -m proxy.devmcp)."""
    from urllib.parse import urlsplit

    from proxy.settings import gateway_pair
    from tests.test_deploy_files import compose

    services = compose()["services"]
    _, backend = gateway_pair(services["facade"]["environment"]["PROXY_GATEWAY_BACKENDS"])
    mcp = services[urlsplit(backend).hostname]
    assert mcp["entrypoint"] == ["python", "-m", "proxy.devmcp"]
    assert str(urlsplit(backend).port) in mcp["command"] and "ports" not in mcp


async def test_mcp_headers_pass_both_ways_and_forwarded_headers_come_from_configuration(gateway: Facade) -> None:
    """Mcp-Method, Mcp-Name, MCP-Protocol-Version and Mcp-Session-Id reach the backend, its Mcp-Session-Id
    reaches the client, the query string is kept; X-Forwarded-Host/-Proto describe the configured resource
    whatever the client claimed, and the Host is the backend's."""
    token = (await token_for(gateway, "/echo"))["access_token"]
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search"}}
    status, answer, response = await _post(gateway, "/echo?cursor=a%26b%3Dc&x=1", call, token, **{
        "Mcp-Method": "tools/call", "Mcp-Name": "search", "MCP-Protocol-Version": "2025-11-25",
        "Mcp-Session-Id": "session-from-client", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "ftp"})
    assert status == 200, answer
    seen = answer["headers"]
    assert answer["query"] == "cursor=a%26b%3Dc&x=1" and answer["method"] == "POST"
    assert seen["x-forwarded-for"] == ["127.0.0.1"]
    assert seen["mcp-method"] == ["tools/call"] and seen["mcp-name"] == ["search"]
    assert seen["mcp-protocol-version"] == ["2025-11-25"] and seen["mcp-session-id"] == ["session-from-client"]
    assert seen["x-forwarded-host"] == [gateway.url.removeprefix("http://")]
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["host"] != [gateway.url.removeprefix("http://")]
    assert response.headers["Mcp-Session-Id"] == "session-from-backend"


async def test_browser_clients_get_cors_on_preflights_answers_and_challenges(gateway: Facade) -> None:
    """A preflight is 204 allowing the MCP headers asked for (and no others); the 401 challenge and a
    proxied answer carry Access-Control-Allow-Origin and expose WWW-Authenticate and Mcp-Session-Id."""
    asked = "authorization, content-type, mcp-method, mcp-name, mcp-param-region, x-unknown"
    async with gateway.http.options(gateway.url + "/mcp", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": asked}) as response:
        assert response.status == 204
        allowed = response.headers["Access-Control-Allow-Headers"]
        assert allowed == "authorization, content-type, mcp-method, mcp-name, mcp-param-region"
        assert response.headers["Access-Control-Allow-Origin"] == "*"
    status, _, response = await _post(gateway, "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"}, None)
    assert status == 401 and response.headers["Access-Control-Allow-Origin"] == "*"
    assert "WWW-Authenticate" in response.headers["Access-Control-Expose-Headers"]
    token = (await token_for(gateway, "/echo"))["access_token"]
    status, _, response = await _post(gateway, "/echo", {"jsonrpc": "2.0", "id": 1, "method": "ping"}, token)
    assert status == 200 and response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Mcp-Session-Id" in response.headers["Access-Control-Expose-Headers"]


async def test_a_store_outage_is_503_and_nothing_reaches_the_backend(make_gateway: GatewayFactory,
                                                                      sdk_backend: str) -> None:
    """With Redis gone the gateway cannot know whether a token was revoked: 503 temporarily_unavailable
    with Retry-After, never a pass (fail closed), and the backend sees no request."""
    import redis.asyncio as aioredis

    from tests.conftest import start_redis

    server = start_redis()
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{server.port}/0", decode_responses=True,
                                     socket_timeout=1, socket_connect_timeout=1)
    try:
        facade = await make_gateway(redis=client, redis_timeout_s=1)
        token = (await token_for(facade, "/events"))["access_token"]
        server.process.terminate()
        server.process.wait(timeout=10)
        before = len(await backend_log(sdk_backend))
        async with facade.http.get(facade.url + "/events", headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == 503
            assert (await response.json())["error"] == "temporarily_unavailable"
            assert int(response.headers["Retry-After"]) > 0
        assert len(await backend_log(sdk_backend)) == before
    finally:
        if server.process.poll() is None:
            server.process.terminate()
        await client.aclose()


async def test_the_path_with_a_trailing_slash_is_the_same_resource(gateway: Facade) -> None:
    """Older SDKs append '/' to the server URL: /mcp/ is served as /mcp (same challenge, same backend)."""
    status, _, response = await _post(gateway, "/mcp/", {"jsonrpc": "2.0", "id": 1, "method": "ping"}, None)
    assert status == 401 and "oauth-protected-resource/mcp" in _challenge(response)
    token = (await token_for(gateway, "/echo"))["access_token"]
    status, answer, _ = await _post(gateway, "/echo/", {"jsonrpc": "2.0", "id": 1, "method": "ping"}, token)
    assert status == 200 and answer["method"] == "POST", answer


async def test_a_body_over_the_limit_is_413_and_not_forwarded(make_gateway: GatewayFactory) -> None:
    """PROXY_GATEWAY_MAX_BODY_BYTES bounds what the gateway reads (declared or streamed): 413 JSON."""
    facade = await make_gateway(gateway_max_body_bytes=1024)
    token = (await token_for(facade, "/echo"))["access_token"]
    big = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x", "arguments": {"a": "y" * 2000}}}
    status, answer, _ = await _post(facade, "/echo", big, token)
    assert status == 413 and answer["error"] == "invalid_request", answer

    async def chunks() -> Any:
        for _ in range(4):
            yield b" " * 400

    async with facade.http.post(facade.url + "/echo", data=chunks(), headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"}) as response:
        assert response.status == 413
    small = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert (await _post(facade, "/echo", small, token))[0] == 200


async def test_identity_headers_follow_the_tokens_scopes(gateway: Facade) -> None:
    """OIDC Core §5.4 at the gateway: without `email`/`profile` in the token's scope the backend gets the
    email and username headers empty (still set, so no client value can stand in), with them filled."""
    plain = (await token_for(gateway, scope="openid"))["access_token"]
    async with mcp_client(gateway.url + "/mcp", plain, {"X-Auth-Request-Email": "root@evil.example"}) as mcp:
        seen = structured(await mcp.call_tool("headers", {}))["headers"]
    assert seen["x-auth-request-user"] == ["demo-user"]
    assert seen.get("x-auth-request-email", [""]) == [""]
    assert seen.get("x-auth-request-preferred-username", [""]) == [""]
    email_only = (await token_for(gateway, scope="openid email"))["access_token"]
    async with mcp_client(gateway.url + "/mcp", email_only) as mcp:
        seen = structured(await mcp.call_tool("headers", {}))["headers"]
    assert seen["x-auth-request-email"] == ["demo@example.com"]
    assert seen.get("x-auth-request-preferred-username", [""]) == [""]
