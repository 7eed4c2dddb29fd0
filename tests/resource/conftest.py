"""Fixtures of the resource-side tests: the SDK's MCP server as a backend process, a facade whose
gateway fronts it, and helpers to get tokens and talk MCP through the gateway."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import pytest
from mcp.client import Client as McpClient
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import Facade, FacadeFactory, free_port
from tests.processes import wait_http

HERE = Path(__file__).resolve().parent
# The gateway resources of `gateway`: path at the facade -> path at the backend.
ROUTES = {"/mcp": "/mcp", "/events": "/raw/events", "/slow": "/raw/slow", "/chunks": "/raw/chunks",
          "/echo": "/raw/echo"}


@pytest.fixture(scope="session")
def sdk_backend() -> Iterator[str]:
    """The MCP SDK's server (tests/resource/sdk_server.py) on a free port: its base URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(HERE / "sdk_server.py"), str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/raw/log", process, timeout_s=30)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


async def backend_log(base: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(base + "/raw/log") as response:
        return list(await response.json())


GatewayFactory = Callable[..., Awaitable[Facade]]


@pytest.fixture
async def make_gateway(make_facade: FacadeFactory, sdk_backend: str) -> GatewayFactory:
    """A facade (and its dev IdP) whose gateway serves ROUTES of the SDK backend; `routes` adds others
    (path -> full backend URL), `redis` replaces the store's client, `overrides` are settings."""

    async def factory(routes: dict[str, str] | None = None, redis: Any = None, **overrides: Any) -> Facade:
        port = free_port()
        issuer = f"http://127.0.0.1:{port}"
        backends = {path: sdk_backend + target for path, target in ROUTES.items()}
        backends.update(routes or {})
        overrides.setdefault("gateway_backends", " ".join(f"{issuer}{path}={url}" for path, url in backends.items()))
        return await make_facade(redis=redis, port=port, **overrides)

    return factory


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> Facade:
    return await make_gateway()


async def token_for(facade: Facade, resource_path: str = "/mcp", **extra: str) -> dict[str, Any]:
    """A token response for the resource at `resource_path` (dev IdP demo user unless login_hint)."""
    return await facade.client().signed_in(resource=facade.url + resource_path, **extra)


@asynccontextmanager
async def mcp_client(url: str, token: str | None, headers: dict[str, str] | None = None) -> AsyncIterator[McpClient]:
    """The MCP SDK's client over Streamable HTTP, sending `Authorization: Bearer <token>` (and `headers`)."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with httpx2.AsyncClient(headers=sent, timeout=30) as http, McpClient(
            streamable_http_client(url, http_client=http)) as client:
        yield client


def tool_text(result: Any) -> str:
    assert not result.is_error, result
    return "".join(getattr(part, "text", "") for part in result.content)


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result
    if result.structured_content is not None:
        return dict(result.structured_content)
    return dict(json.loads(tool_text(result)))
