"""Issue 22 finding 1: forward-auth judges the path the way nginx and Caddy route it.

Two resources behind one proxy, `/mcp` and `/mcp/admin`, each its own backend (the documented config
plus a second location/route for `/mcp/admin`). A token for `/mcp` must never reach the admin backend,
however the client spells the path: percent-encoded unreserved letters (`/mcp/%61dmin`), merged slashes
(`/mcp//admin`), dot segments, an encoded slash, another letter case. The proxies are the real ones;
what each backend received is what the test asserts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import Facade, FacadeFactory, free_port
from tests.resource.test_proxies import PROXIES

SPELLINGS = ["/mcp/%61dmin", "/mcp/admi%6E", "/mcp/%61%64%6d%69%6e", "/mcp//admin", "/mcp///admin/",
             "/mcp/./admin", "/mcp/x/../admin", "/mcp/%2e/admin", "/mcp/x/%2e%2e/admin", "/mcp%2Fadmin",
             "/mcp/%2Fadmin", "/mcp/ADMIN", "/mcp/Admin", "/MCP/admin", "/mcp/admin%2F", "/mcp/%41dmin"]


@dataclass
class Backend:
    name: str
    seen: list[str] = field(default_factory=list)


def _with_admin_location(site: str) -> str:
    """docs/nginx.conf's `/mcp` location, copied for `/mcp/admin` with its own backend."""
    start = site.index("    location /mcp {")
    end = site.index("\n    }\n", start) + len("\n    }\n")
    admin = site[start:end].replace("location /mcp {", "location /mcp/admin {").replace(
        "proxy_pass http://mcp_server;", "proxy_pass http://mcp_admin;")
    site = site[:end] + "\n" + admin + site[end:]
    return site.replace("upstream mcp_server {", "upstream mcp_admin {\n    server ADMIN_BACKEND;\n}\n\n"
                        "upstream mcp_server {", 1)


def _with_admin_route(site: str) -> str:
    """docs/Caddyfile's `/mcp*` route, copied for `/mcp/admin*` with its own backend."""
    start = site.index("\thandle /mcp* {")
    end = site.index("\n\t}\n", start) + len("\n\t}\n")
    admin = site[start:end].replace("handle /mcp* {", "handle /mcp/admin* {").replace(
        "reverse_proxy 127.0.0.1:3000 {", "reverse_proxy ADMIN_BACKEND {")
    return site[:start] + admin + "\n" + site[start:]


@dataclass
class PathStack:
    proxy: str
    facade: Facade
    backends: dict[str, Backend]


async def _backend(aiohttp_server: Any, name: str) -> tuple[Backend, str]:
    backend = Backend(name)

    async def handler(request: web.Request) -> web.Response:
        backend.seen.append(request.raw_path)
        return web.json_response({"backend": name})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await aiohttp_server(app, host="127.0.0.1")
    return backend, f"127.0.0.1:{server.port}"


@pytest.fixture(params=sorted(PROXIES))
async def paths(request: pytest.FixtureRequest, make_facade: FacadeFactory, aiohttp_server: Any
                ) -> AsyncIterator[PathStack]:
    port = free_port()
    proxy = f"http://127.0.0.1:{port}"
    facade = await make_facade(resources=f"{proxy}/mcp {proxy}/mcp/admin", trusted_proxies="127.0.0.1")
    (mcp, mcp_address), (admin, admin_address) = (await _backend(aiohttp_server, "mcp"),
                                                 await _backend(aiohttp_server, "admin"))
    add = _with_admin_location if request.param == "nginx" else _with_admin_route

    def edit(site: str) -> str:
        return add(site).replace("ADMIN_BACKEND", admin_address)

    with PROXIES[request.param](port, facade.url.removeprefix("http://"), mcp_address, edit):
        yield PathStack(proxy, facade, {"mcp": mcp, "admin": admin})


async def _get(stack: PathStack, path: str, token: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(
            aiohttp.client.URL(stack.proxy + path, encoded=True), headers={"Authorization": f"Bearer {token}"},
            allow_redirects=False) as response:
        await response.read()
        return response.status


async def test_a_token_for_mcp_never_reaches_the_admin_backend(paths: PathStack) -> None:
    """Each token reaches its own backend by the plain path (the control); no other spelling of
    `/mcp/admin` gets a `/mcp` token to the admin backend: the facade refuses it, or judges it as
    `/mcp/admin` and refuses the token for that."""
    mcp_token = (await paths.facade.client().signed_in(resource=paths.proxy + "/mcp"))["access_token"]
    admin_token = (await paths.facade.client().signed_in(resource=paths.proxy + "/mcp/admin"))["access_token"]
    assert await _get(paths, "/mcp", mcp_token) == 200
    assert await _get(paths, "/mcp/admin", admin_token) == 200
    assert await _get(paths, "/mcp/admin", mcp_token) in (401, 403)
    assert paths.backends["mcp"].seen == ["/mcp"] and paths.backends["admin"].seen == ["/mcp/admin"]
    answers = {spelling: await _get(paths, spelling, mcp_token) for spelling in SPELLINGS}
    assert paths.backends["admin"].seen == ["/mcp/admin"], answers
