"""What an MCP Streamable HTTP request asks for, read from its JSON-RPC body and its routing headers.

The 2026-07-28 transport mirrors the method and the named target in `Mcp-Method` and `Mcp-Name`, and a
server MUST answer 400 when they disagree with the body: otherwise a proxy routing or authorising on the
headers (forward-auth) and the server executing the body would act on different calls. Knows no HTTP.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from oauth_facade_verifier import strictjson

#: JSON-RPC error code for routing headers that disagree with the body (MCP 2026-07-28, HEADER_MISMATCH).
HEADER_MISMATCH = -32020
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
#: Methods whose target the `Mcp-Name` header mirrors, and the params key holding it.
NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_BASE64_SENTINEL = re.compile(r"^=\?base64\?(?P<payload>.*)\?=$")


class BadMessage(Exception):
    """The body is not what it must be: 400 with a JSON-RPC error (`code`, `id` of the request if known)."""

    def __init__(self, code: int, message: str, request_id: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id

    def body(self) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": self.request_id, "error": {"code": self.code, "message": self.message}}


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    name: str | None  # the tool / prompt name or resource URI, for name-bearing methods
    request_id: Any


def calls_in(body: bytes) -> list[Call]:
    """The JSON-RPC messages with a `method` in a request body (one message, or a legacy batch)."""
    try:
        document = strictjson.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadMessage(PARSE_ERROR, f"The body is not JSON: {exc}") from None
    messages = document if isinstance(document, list) else [document]
    calls: list[Call] = []
    for message in messages:
        if not isinstance(message, dict):
            raise BadMessage(INVALID_REQUEST, "A JSON-RPC message must be an object.")
        method = message.get("method")
        if method is None:
            continue  # a response to a server request
        if not isinstance(method, str):
            raise BadMessage(INVALID_REQUEST, "The method must be a string.", message.get("id"))
        name = None
        key = NAME_BEARING.get(method)
        if key is not None:
            params = message.get("params")
            value = params.get(key) if isinstance(params, dict) else None
            if not isinstance(value, str):
                raise BadMessage(INVALID_REQUEST, f"{method} needs a string params.{key}.", message.get("id"))
            name = value
        calls.append(Call(method, name, message.get("id")))
    return calls


TOOLS_CALL = "tools/call"


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def call_needs(method: str, name: str | None, tool_scopes: Mapping[str, Iterable[str]]) -> list[str]:
    """The scopes one call needs under a per-tool policy. Names are matched exactly; a spelling that only
    case or Unicode compatibility folding makes equal (`Tools/Call`, `DEPLOY`, fullwidth letters) fails
    closed, since a server that folds names would run the guarded tool: another spelling of `tools/call`
    needs every tool's scopes, another spelling of a guarded tool's name that tool's scopes."""
    if method != TOOLS_CALL:
        if _folded(method) == TOOLS_CALL:
            return [scope for scopes in tool_scopes.values() for scope in scopes]
        return []
    if name is None:
        return []
    exact = tool_scopes.get(name)
    if exact is not None:
        return list(exact)
    folded = _folded(name)
    return [scope for tool, scopes in tool_scopes.items() if _folded(tool) == folded for scope in scopes]


def decode_header_value(value: str) -> str:
    """`Mcp-Name` carries non-ASCII names as `=?base64?<utf-8 base64>?=` (MCP transports, custom headers)."""
    match = _BASE64_SENTINEL.match(value)
    if match is None:
        return value
    try:
        return base64.b64decode(match["payload"], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return value  # not a valid sentinel: compared as it is, so it mismatches


def check_routing_headers(calls: list[Call], method_header: str | None, name_header: str | None) -> None:
    """400 (-32020) when `Mcp-Method`/`Mcp-Name` are sent and disagree with the single message's body.

    Clients of earlier revisions send neither: then there is nothing to compare (the body decides)."""
    if method_header is None and name_header is None:
        return
    if len(calls) != 1:
        raise BadMessage(HEADER_MISMATCH, "Mcp-Method/Mcp-Name headers need exactly one request in the body.")
    call = calls[0]
    if method_header is not None and method_header != call.method:
        raise BadMessage(HEADER_MISMATCH, "The Mcp-Method header does not match the body's method.",
                         call.request_id)
    if call.name is not None:
        if name_header is None or decode_header_value(name_header) != call.name:
            raise BadMessage(HEADER_MISMATCH, "The Mcp-Name header does not match the body's "
                             f"params.{NAME_BEARING[call.method]}.", call.request_id)
    elif name_header is not None:
        raise BadMessage(HEADER_MISMATCH, f"{call.method} names no target, yet Mcp-Name is set.", call.request_id)
