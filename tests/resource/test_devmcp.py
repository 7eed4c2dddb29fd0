"""The `make run` stack: the facade with its mounted dev IdP, and the demo MCP server behind the gateway.

Processes as `make run` starts them (`oauth-facade serve`, `python -m proxy.devmcp`), on free ports; the
MCP SDK's OAuth client, pointed only at the gateway's URL, signs in (a scripted browser through the dev
IdP) and calls `whoami`, as Inspector or Claude Code would.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
from mcp.client import Client as McpClient
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata
from pydantic import AnyUrl

from proxy.settings import gateway_pair
from tests.conftest import free_port
from tests.interop.test_mcp_python_sdk import MemoryStorage
from tests.processes import ROOT, facade_process, stop
from tests.resource.conftest import structured
from tests.resource.test_step_up import Headless


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the demo MCP server did not listen on {port}")


def test_makefile_run_puts_the_demo_server_behind_the_gateway_at_8080_mcp() -> None:
    """`make run`: the demo server's port in the recipe is the gateway backend's, the resource is
    http://127.0.0.1:8080/mcp (the facade's default issuer + /mcp)."""
    makefile = (ROOT / "Makefile").read_text()
    resource, backend = gateway_pair(re.search(r"^DEMO_GATEWAY := (\S+)$", makefile, re.M)[1])  # type: ignore[index]
    assert resource == "http://127.0.0.1:8080/mcp"
    recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert f"-m proxy.devmcp --host 127.0.0.1 --port {urlsplit(backend).port}" in recipe
    assert "PROXY_GATEWAY_BACKENDS" in recipe and "oauth-facade serve" in recipe


async def test_sdk_client_signs_in_through_the_dev_idp_and_calls_whoami() -> None:
    """From the gateway URL alone: 401 -> discovery -> DCR -> sign-in -> token; `whoami` answers with the
    dev IdP's demo user and the client's own id, which only the gateway's identity headers carry."""
    port, demo_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{port}"
    demo = subprocess.Popen([sys.executable, "-m", "proxy.devmcp", "--port", str(demo_port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_listening(demo_port, demo)
        env = {"PROXY_PORT": str(port), "PROXY_ISSUER": issuer,
               "PROXY_GATEWAY_BACKENDS": f"{issuer}/mcp=http://127.0.0.1:{demo_port}/mcp"}
        with facade_process(env):
            headless = Headless(f"http://127.0.0.1:{free_port()}/callback")
            storage = MemoryStorage()
            provider = OAuthClientProvider(
                server_url=issuer + "/mcp",
                client_metadata=OAuthClientMetadata(client_name="demo", redirect_uris=[AnyUrl(headless.redirect_uri)]),
                storage=storage, redirect_handler=headless.redirect_handler,
                callback_handler=headless.callback_handler)
            async with httpx2.AsyncClient(auth=provider, timeout=30) as http, McpClient(
                    streamable_http_client(issuer + "/mcp", http_client=http)) as client:
                tools = await client.list_tools()
                who = structured(await client.call_tool("whoami", {}))
    finally:
        stop(demo)
        if demo.stderr:
            demo.stderr.close()
    assert [tool.name for tool in tools.tools] == ["whoami"]
    assert storage.client_info is not None
    assert who["sub"] == "demo-user" and who["email"] == "demo@example.com"
    assert who["preferred_username"] == "demo" and who["client_id"] == storage.client_info.client_id
    assert "openid" in who["scopes"]


def test_demo_server_refuses_production() -> None:
    """Like the dev IdP, the demo MCP server will not start with PROXY_ENV=production."""
    done = subprocess.run([sys.executable, "-m", "proxy.devmcp", "--port", str(free_port())], cwd=Path(ROOT),
                          env={"PROXY_ENV": "production", "PATH": "/usr/bin:/bin"}, capture_output=True, timeout=30,
                          text=True, check=False)
    assert done.returncode == 2 and "development only" in done.stderr
