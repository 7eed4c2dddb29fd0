"""The image and the compose stack, run: what a user of `docker compose up --build` gets, driven from the host.

The base images are local stand-ins (tests/containers/prepare.sh): Debian bookworm for python:3.11-slim
(Python 3.11 as in the official image, at /usr/bin rather than /usr/local/bin; nothing here depends on
where) and Debian's Redis 7.0 for redis:7-alpine.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import httpx2
import pytest
from mcp.client import Client as McpClient
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from tests.conftest import free_port
from tests.containers.conftest import FACADE, Stack, wait_http
from tests.interop.test_mcp_python_sdk import MemoryStorage
from tests.resource.conftest import structured
from tests.resource.test_step_up import Headless

# The first test also waits for the stack's build (about a minute on a clean machine, more under load).
pytestmark = pytest.mark.timeout(900)
RESOURCE = FACADE + "/mcp"
IMAGE_SERVICES = ("facade", "devidp", "mcp")  # the three services built from the Dockerfile


async def sign_in_and_call_whoami(storage: MemoryStorage, *, may_sign_in: bool = True) -> dict[str, Any]:
    """The MCP SDK's OAuth client, told only the gateway's URL: 401 -> discovery -> DCR -> sign-in through the
    dev IdP container -> token -> `whoami` through the gateway to the demo MCP server container. With
    `may_sign_in=False` the tokens already in `storage` must do: a new authorization fails the call."""
    headless = Headless(f"http://127.0.0.1:{free_port()}/callback")

    async def no_sign_in(url: str) -> None:
        raise AssertionError(f"the client had to sign in again: {url}")

    provider = OAuthClientProvider(
        server_url=RESOURCE,
        client_metadata=OAuthClientMetadata(client_name="container test",
                                            redirect_uris=[AnyUrl(headless.redirect_uri)]),
        storage=storage, redirect_handler=headless.redirect_handler if may_sign_in else no_sign_in,
        callback_handler=headless.callback_handler)
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http, McpClient(
            streamable_http_client(RESOURCE, http_client=http)) as client:
        tools = await client.list_tools()
        who = structured(await client.call_tool("whoami", {}))
    assert [tool.name for tool in tools.tools] == ["whoami"]
    return who


def _json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return dict(json.loads(answer.read()))


async def test_sdk_client_signs_in_and_calls_whoami_through_the_gateway(stack: Stack) -> None:
    """From the host, with the real MCP Python SDK: a whole sign-in through the dev IdP container, and the demo
    MCP server container answers `whoami` with the user and the client's id, which only the gateway's identity
    headers carry (the facade reached Redis, the dev IdP by its network alias, and the backend by its name)."""
    storage = MemoryStorage()
    who = await sign_in_and_call_whoami(storage)
    assert storage.client_info is not None and storage.tokens is not None
    assert who["sub"] == "demo-user" and who["email"] == "demo@example.com"
    assert who["client_id"] == storage.client_info.client_id
    assert "openid" in who["scopes"]
    assert _json(FACADE + "/.well-known/oauth-authorization-server")["issuer"] == FACADE


async def test_a_restart_of_the_facade_container_loses_nothing(stack: Stack) -> None:
    """Tokens issued before `restart facade` work after it: the signing key and the grants live in Redis.
    The access token still calls `whoami` without a new sign-in, and the refresh token issued before the
    restart rotates once after it (and the new access token works too)."""
    storage = MemoryStorage()
    before = await sign_in_and_call_whoami(storage)
    assert storage.tokens is not None and storage.tokens.refresh_token, "no refresh token was issued"
    assert storage.client_info is not None
    refresh_token, client_id = storage.tokens.refresh_token, storage.client_info.client_id
    keys_before = _json(FACADE + "/jwks")
    started_before = stack.inspect("facade")["State"]["StartedAt"]

    stack.compose_run("restart", "facade", timeout_s=120)
    wait_http(FACADE + "/readyz")
    assert stack.inspect("facade")["State"]["StartedAt"] != started_before, "the container did not restart"

    assert _json(FACADE + "/jwks") == keys_before
    assert await sign_in_and_call_whoami(storage, may_sign_in=False) == before
    async with httpx2.AsyncClient(timeout=30) as http:
        answer = await http.post(FACADE + "/token", data={
            "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id})
    assert answer.status_code == 200, answer.text
    rotated = OAuthToken.model_validate(answer.json())
    assert rotated.refresh_token and rotated.refresh_token != refresh_token
    storage.tokens = rotated
    assert await sign_in_and_call_whoami(storage, may_sign_in=False) == before


async def test_a_restart_of_the_redis_container_loses_nothing(stack: Stack) -> None:
    """Redis keeps the grants in its append-only file on the compose volume: after `restart redis` the facade is
    ready again by itself and the refresh token issued before the restart rotates."""
    storage = MemoryStorage()
    await sign_in_and_call_whoami(storage)
    assert storage.tokens is not None and storage.tokens.refresh_token and storage.client_info is not None
    started_before = stack.inspect("redis")["State"]["StartedAt"]

    stack.compose_run("restart", "redis", timeout_s=120)
    assert stack.inspect("redis")["State"]["StartedAt"] != started_before, "the container did not restart"
    wait_http(FACADE + "/readyz")

    async with httpx2.AsyncClient(timeout=30) as http:
        answer = await http.post(FACADE + "/token", data={
            "grant_type": "refresh_token", "refresh_token": storage.tokens.refresh_token,
            "client_id": storage.client_info.client_id})
    assert answer.status_code == 200, answer.text


def test_the_image_runs_as_a_non_root_user_on_a_read_only_root(stack: Stack) -> None:
    """In every container built from the Dockerfile: uid 10001 (not 0), and / is read-only even to root
    (so the refusal is the filesystem's, not a permission), while the compose file's tmpfs /tmp is writable."""
    for service in IMAGE_SERVICES:
        uid = stack.exec(service, "id", "-u")
        assert uid.returncode == 0 and uid.stdout.strip() == "10001", (service, uid.stdout, uid.stderr)
        assert stack.inspect(service)["HostConfig"]["ReadonlyRootfs"] is True, service
        for user in (None, "0"):
            write = stack.exec(service, "sh", "-c", "echo x > /probe", user=user)
            assert write.returncode != 0 and "Read-only file system" in write.stderr, (service, user, write)
        scratch = stack.exec(service, "sh", "-c", "echo x > /tmp/probe && cat /tmp/probe")
        assert scratch.returncode == 0 and scratch.stdout.strip() == "x", (service, scratch)


def test_the_image_healthcheck_passes_and_fails_when_the_facade_does_not_answer(stack: Stack) -> None:
    """The image keeps its HEALTHCHECK (built with --format docker) and `podman healthcheck run` (which runs it
    in the container; only podman's periodic timer needs systemd) reports the facade healthy. The same command
    fails when nothing answers on the port it checks, so the check can tell a down facade."""
    image = json.loads(stack.podman_run("image", "inspect", stack.inspect("facade")["Image"]).stdout)[0]
    healthcheck = image["Healthcheck"]["Test"]
    assert healthcheck[0] == "CMD" and any("/healthz" in part for part in healthcheck)
    run = stack.podman_run("healthcheck", "run", stack.container("facade"), check=False)
    assert run.returncode == 0, run
    assert stack.inspect("facade")["State"]["Health"]["Status"] == "healthy"
    elsewhere = stack.exec("facade", *healthcheck[1:], env={"PROXY_PORT": "1"})
    assert elsewhere.returncode != 0 and "Connection refused" in elsewhere.stderr, elsewhere
