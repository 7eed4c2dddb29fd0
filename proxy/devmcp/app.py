"""A minimal MCP server over Streamable HTTP (JSON responses), in aiohttp.

Why not the MCP SDK: it is a test extra, heavy, and its server API moves between majors; the runtime
image should not carry it for a demo. MCP clients today (Inspector, Claude Code, the SDKs in `auto`
mode) open with the `initialize` handshake, which is all this speaks: `server/discover` (2026-07-28)
answers METHOD_NOT_FOUND, the documented signal to fall back. POST only (GET and DELETE are 405, which
the transport allows: no server-initiated stream, no session to end).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from proxy.resource import identity

NAME = "oauth-facade demo MCP server"
VERSION = "1.0.0"
PROTOCOL_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
PARSE_ERROR = -32700
INVALID_REQUEST = -32600

WHOAMI = {
    "name": "whoami",
    "title": "Who am I?",
    "description": "The signed-in user, as the oauth-facade gateway vouches for them (identity headers).",
    "inputSchema": {"type": "object", "properties": {}, "additionalProperties": False},
    "annotations": {"readOnlyHint": True, "openWorldHint": False},
}


class DevMcpRefused(Exception):
    """The demo server refuses PROXY_ENV=production, like the development IdP."""


def caller(request: web.Request) -> dict[str, Any]:
    """Who the gateway says is calling; `None` values when the request did not come through it."""
    def value(name: str) -> str | None:
        raw = request.headers.get(name)
        return unquote(raw) if raw else None

    scopes = request.headers.get(identity.SCOPES)
    return {"sub": value(identity.USER), "email": value(identity.EMAIL),
            "preferred_username": value(identity.USERNAME), "client_id": value(identity.CLIENT_ID),
            "scopes": scopes.split() if scopes else []}


def _result(request_id: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def answer(request: web.Request, message: Any) -> dict[str, Any] | None:
    """The JSON-RPC answer to one message; None for notifications and responses."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return _error(None, INVALID_REQUEST, "Not a JSON-RPC 2.0 message.")
    if "method" not in message or "id" not in message:
        return None
    request_id, method = message["id"], message["method"]
    params = message.get("params") if isinstance(message.get("params"), dict) else {}
    if method == "initialize":
        wanted = params.get("protocolVersion")
        version = wanted if wanted in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[-1]
        return _result(request_id, {"protocolVersion": version, "capabilities": {"tools": {"listChanged": False}},
                                    "serverInfo": {"name": NAME, "version": VERSION},
                                    "instructions": "Call the whoami tool to see who the gateway says you are."})
    if method == "ping":
        return _result(request_id, {})
    if method == "tools/list":
        return _result(request_id, {"tools": [WHOAMI]})
    if method == "tools/call":
        if params.get("name") != "whoami":
            return _error(request_id, INVALID_PARAMS, f"Unknown tool: {params.get('name')!r}.")
        who = caller(request)
        return _result(request_id, {"content": [{"type": "text", "text": json.dumps(who)}],
                                    "structuredContent": who, "isError": False})
    return _error(request_id, METHOD_NOT_FOUND, f"Method not found: {method}.")


async def mcp(request: web.Request) -> web.Response:
    try:
        document = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return web.json_response(_error(None, PARSE_ERROR, "The body is not JSON."), status=400)
    batch = document if isinstance(document, list) else [document]
    answers = [reply for message in batch if (reply := answer(request, message)) is not None]
    if not answers:
        return web.Response(status=202)
    return web.json_response(answers if isinstance(document, list) else answers[0])


async def not_allowed(request: web.Request) -> web.Response:
    return web.Response(status=405, headers={"Allow": "POST"})


def create_devmcp_app(path: str = "/mcp", *, env: str = "development") -> web.Application:
    if env == "production":
        raise DevMcpRefused("the demo MCP server is for development only")
    app = web.Application()
    app.router.add_post(path, mcp)
    app.router.add_route("GET", path, not_allowed)
    app.router.add_route("DELETE", path, not_allowed)
    return app
