"""nginx (`auth_request`) and Caddy (`forward_auth`) -> the facade's forward-auth -> the MCP SDK's server.

The real servers run the configuration files shipped in docs/ with only their placeholders replaced
(listen address, facade address, MCP server address); nginx's server block is included from a minimal
main config (pid, temp paths in a temporary directory), Caddy's site gets a global options block
(no admin endpoint, no automatic HTTPS on a loopback port). Each test asserts what a client and the
MCP server see: the SDK client's calls succeed with a token, the backend gets the identity and never
the token or a spoofed identity header, refusals carry the facade's challenge.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Facade, FacadeFactory, free_port
from tests.programs import program
from tests.resource.conftest import mcp_client, structured, tool_text

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _replace(text: str, substitutions: dict[str, str]) -> str:
    for placeholder, value in substitutions.items():
        assert placeholder in text, f"the documented config no longer contains {placeholder!r}"
        text = text.replace(placeholder, value)
    return text


def _wait_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the proxy exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the proxy did not listen on {port}:\n{log.read_text(errors='replace')}")


@contextmanager
def nginx(port: int, facade: str, backend: str, edit: Callable[[str], str] = str) -> Iterator[None]:
    """`edit` changes the documented site before the placeholders are replaced (a test's extra location)."""
    binary = program("nginx")
    workdir = Path(tempfile.mkdtemp(prefix="facade-nginx-"))
    site = _replace(edit((DOCS / "nginx.conf").read_text()), {
        "listen 80;": f"listen 127.0.0.1:{port};", "127.0.0.1:8080": facade, "127.0.0.1:3000": backend})
    (workdir / "mcp.conf").write_text(site)
    temp = "".join(f"{name}_temp_path {workdir / name};\n" for name in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                         "scgi"))
    (workdir / "nginx.conf").write_text(
        f"daemon off;\nworker_processes 1;\npid {workdir / 'nginx.pid'};\nerror_log {workdir / 'error.log'} warn;\n"
        f"events {{ worker_connections 512; }}\n"
        f"http {{\naccess_log off;\n{temp}include {workdir / 'mcp.conf'};\n}}\n")
    log = workdir / "error.log"
    process = subprocess.Popen([binary, "-p", str(workdir), "-c", str(workdir / "nginx.conf")],
                               stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    try:
        _wait_port(port, process, log)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def caddy(port: int, facade: str, backend: str, edit: Callable[[str], str] = str) -> Iterator[None]:
    """`edit` changes the documented site before the placeholders are replaced (a test's extra route)."""
    binary = program("caddy")
    workdir = Path(tempfile.mkdtemp(prefix="facade-caddy-"))
    site = _replace(edit((DOCS / "Caddyfile").read_text()), {
        "mcp.example.com {": f"http://127.0.0.1:{port} {{", "127.0.0.1:8080": facade, "127.0.0.1:3000": backend})
    (workdir / "Caddyfile").write_text("{\n\tadmin off\n\tauto_https off\n}\n\n" + site)
    log = workdir / "caddy.log"
    env = {"HOME": str(workdir), "XDG_DATA_HOME": str(workdir / "data"), "XDG_CONFIG_HOME": str(workdir / "config"),
           "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen([binary, "run", "--config", str(workdir / "Caddyfile"), "--adapter", "caddyfile"],
                               stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    try:
        _wait_port(port, process, log)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


PROXIES = {"nginx": nginx, "caddy": caddy}


@dataclass
class Stack:
    name: str
    proxy: str  # base URL of the proxy
    resource: str  # the MCP endpoint through it
    facade: Facade


@pytest.fixture(params=sorted(PROXIES))
async def stack(request: pytest.FixtureRequest, make_facade: FacadeFactory, sdk_backend: str
                ) -> AsyncIterator[Stack]:
    port = free_port()
    proxy = f"http://127.0.0.1:{port}"
    facade = await make_facade(resources=proxy + "/mcp", trusted_proxies="127.0.0.1",
                               scopes="openid offline_access mcp:deploy", tool_scopes="deploy=mcp:deploy")
    with PROXIES[request.param](port, facade.url.removeprefix("http://"), sdk_backend.removeprefix("http://")):
        yield Stack(request.param, proxy, proxy + "/mcp", facade)


async def _post(stack: Stack, body: dict[str, Any], token: str | None, **headers: str
                ) -> tuple[int, str, aiohttp.ClientResponse]:
    sent = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as http, http.post(stack.resource, data=json.dumps(body),
                                                          headers=sent) as response:
        return response.status, await response.text(), response


async def test_sdk_client_through_the_proxy_gets_identity_never_the_token_or_a_spoofed_header(stack: Stack) -> None:
    """The SDK client, with a token and a spoofed X-Auth-Request-User, calls the SDK server through the
    proxy: the server sees the token's identity once, no Authorization, no spoofed value; a long result
    with a progress notification streams through."""
    client = stack.facade.client()
    token = (await client.signed_in(resource=stack.resource, scope="openid email offline_access"))["access_token"]
    spoofed = {"X-Auth-Request-User": "admin", "X-Auth-Request-Email": "root@evil.example",
               "X-Auth-Request-Groups": "admins"}
    progress: list[str | None] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message)

    async with mcp_client(stack.resource, token, spoofed) as mcp:
        seen = structured(await mcp.call_tool("headers", {}))["headers"]
        text = tool_text(await mcp.call_tool("long_result", {"size": 200_000, "progress": True},
                                             progress_callback=on_progress))
    assert "authorization" not in seen
    assert seen["x-auth-request-user"] == ["demo-user"]
    assert seen["x-auth-request-email"] == ["demo@example.com"]
    assert seen["x-auth-request-client-id"] == [client.client_id]
    assert seen["x-auth-request-scopes"] == ["openid email offline_access"]
    assert len(text) == 200_000 and progress == ["halfway"]
    if stack.name == "caddy":  # Caddy deletes the whole prefix; nginx cannot (docs/nginx.conf says so)
        assert "x-auth-request-groups" not in seen


async def test_refusals_carry_the_facades_challenge_through_the_proxy(stack: Stack) -> None:
    """No token: 401 with the facade's challenge (nginx: via auth_request_set + add_header always); a
    `tools/call` of a policy-guarded tool: 403 insufficient_scope naming the scope; the resource's RFC 9728
    document is served at the proxy's origin and names the proxy's URL."""
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    status, _, response = await _post(stack, ping, None)
    metadata = stack.facade.url + "/.well-known/oauth-protected-resource/mcp"
    assert status == 401
    expected = f'Bearer scope="openid email profile", resource_metadata="{metadata}"'
    assert response.headers["WWW-Authenticate"] == expected

    token = (await stack.facade.client().signed_in(resource=stack.resource))["access_token"]
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "deploy", "arguments": {"target": "x"}}}
    status, _, response = await _post(stack, call, token, **{"Mcp-Method": "tools/call", "Mcp-Name": "deploy"})
    assert status == 403
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="insufficient_scope"')
    assert 'scope="mcp:deploy"' in response.headers["WWW-Authenticate"]

    async with aiohttp.ClientSession() as http, http.get(
            stack.proxy + "/.well-known/oauth-protected-resource/mcp") as response:
        document = await response.json()
    assert document["resource"] == stack.resource and document["authorization_servers"] == [stack.facade.url]


async def test_a_revoked_token_is_refused_through_the_proxy(stack: Stack) -> None:
    """A token that worked is 401 invalid_token through the proxy right after its revocation."""
    client = stack.facade.client()
    token = (await client.signed_in(resource=stack.resource))["access_token"]
    async with mcp_client(stack.resource, token) as mcp:
        assert structured(await mcp.call_tool("headers", {}))["headers"]["x-auth-request-user"] == ["demo-user"]
    async with stack.facade.http.post(stack.facade.url + "/revoke",
                                      data={"token": token, "client_id": client.client_id}) as response:
        assert response.status == 200
    status, _, response = await _post(stack, {"jsonrpc": "2.0", "id": 1, "method": "ping"}, token)
    assert status == 401 and 'error="invalid_token"' in response.headers["WWW-Authenticate"]
