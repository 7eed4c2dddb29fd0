"""The MCP server behind the gateway and the forward-auth proxies in tests/resource, run as its own process.

The MCP side is the official SDK's server (`MCPServer`, Streamable HTTP, no auth of its own: the
gateway or the proxy in front is what protects it). Its tools report what reached it, so a test can
assert on the backend's view: `headers` lists every request header it received.

Beside `/mcp` it serves raw routes the tests drive through a second gateway resource:
- `/raw/events`: an SSE stream sending an event every 50 ms until the client goes; each stream that
  ends records how (`GET /raw/log` lists them), proving a client disconnect reached the backend;
- `/raw/slow`: headers only after 5 s (gateway timeout); `/raw/chunks`: a chunked body in pieces;
- `/raw/echo`: the method, query and headers it received, with an `Mcp-Session-Id` response header.

Usage: python tests/resource/sdk_server.py PORT
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from starlette.types import Receive, Scope, Send

LOG: list[dict[str, Any]] = []


def build() -> Any:
    server = MCPServer(name="gateway-backend")

    @server.tool()
    async def headers(ctx: Context) -> dict[str, Any]:
        """Every header of the request that carried this call, as the backend received it (lower-case names)."""
        request = ctx.request_context.request
        raw = getattr(request, "scope", {}).get("headers", [])
        seen: dict[str, list[str]] = {}
        for name, value in raw:
            seen.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        return {"headers": seen}

    @server.tool()
    async def long_result(size: int, progress: bool = False, ctx: Context | None = None) -> str:
        """A text result of `size` characters; with `progress`, a progress notification comes first."""
        if progress and ctx is not None:
            await ctx.report_progress(0.5, 1.0, "halfway")
            await asyncio.sleep(0.05)
        line = "0123456789abcdef" * 4 + "\n"
        return (line * (size // len(line) + 1))[:size]

    @server.tool()
    async def deploy(target: str) -> str:
        """A tool the per-tool scope policy guards in the tests."""
        return f"deployed {target}"

    mcp_app = server.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/raw/"):
            await raw(scope, receive, send)
        else:
            await mcp_app(scope, receive, send)

    return app


async def _start(send: Send, status: int, content_type: bytes, extra: list[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), *extra]})


async def raw(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    if path == "/raw/log":
        body = json.dumps(LOG).encode()
        await _start(send, 200, b"application/json")
        await send({"type": "http.response.body", "body": body})
    elif path == "/raw/events":
        entry: dict[str, Any] = {"sent": 0, "ended": None}
        LOG.append(entry)
        await _start(send, 200, b"text/event-stream", [(b"cache-control", b"no-cache")])
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            while not gone.done() and entry["sent"] < 2000:
                await send({"type": "http.response.body", "body": f"data: {entry['sent']}\n\n".encode(),
                            "more_body": True})
                entry["sent"] += 1
                await asyncio.wait({gone}, timeout=0.05)
            entry["ended"] = "client disconnected" if gone.done() else "finished"
            if not gone.done():
                await send({"type": "http.response.body", "body": b""})
        except OSError:
            entry["ended"] = "client disconnected"
        finally:
            gone.cancel()
    elif path == "/raw/echo":
        seen: dict[str, list[str]] = {}
        for name, value in scope["headers"]:
            seen.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        body = json.dumps({"method": scope["method"], "query": scope["query_string"].decode(), "headers": seen})
        await _start(send, 200, b"application/json", [(b"mcp-session-id", b"session-from-backend")])
        await send({"type": "http.response.body", "body": body.encode()})
    elif path == "/raw/slow":
        await asyncio.sleep(5)
        await _start(send, 200, b"application/json")
        await send({"type": "http.response.body", "body": b"{}"})
    elif path == "/raw/chunks":
        await _start(send, 200, b"application/octet-stream")
        for index in range(5):
            await send({"type": "http.response.body", "body": f"chunk{index};".encode(), "more_body": True})
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b""})
    else:
        await _start(send, 404, b"text/plain")
        await send({"type": "http.response.body", "body": b"not found"})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def main(argv: list[str]) -> int:
    config = uvicorn.Config(build(), host="127.0.0.1", port=int(argv[1]), log_level="warning", lifespan="on",
                            access_log=False)
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
