"""`tools/list` answers with the tools a caller may not call taken out (access policy `filter_tools_list`).

Streamable HTTP answers a POST with JSON or with an SSE stream whose `data` lines carry the JSON-RPC
response; both are rewritten here, every other byte (other events, ids, comments) kept. What cannot be
parsed is passed on as it is: the policy is still enforced on `tools/call`, the list is only a courtesy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


def _filter_message(message: Any, keep: Callable[[str], bool]) -> bool:
    """Filter a JSON-RPC result's `tools` in place; True when it was a tools result."""
    if not isinstance(message, dict) or not isinstance(message.get("result"), dict):
        return False
    tools = message["result"].get("tools")
    if not isinstance(tools, list):
        return False
    message["result"]["tools"] = [tool for tool in tools if isinstance(tool, dict)
                                  and isinstance(tool.get("name"), str) and keep(tool["name"])]
    return True


def _json(data: bytes, keep: Callable[[str], bool]) -> bytes | None:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    messages = document if isinstance(document, list) else [document]
    changed = [_filter_message(message, keep) for message in messages]
    return json.dumps(document, separators=(",", ":")).encode() if any(changed) else None


def _sse(body: bytes, keep: Callable[[str], bool]) -> bytes:
    out: list[bytes] = []
    position = 0
    for match in _EVENT_END.finditer(body):
        out.append(_sse_event(body[position:match.start()], keep) + match.group())
        position = match.end()
    out.append(body[position:])
    return b"".join(out)


def _sse_event(event: bytes, keep: Callable[[str], bool]) -> bytes:
    lines = event.splitlines()
    data = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
    if not data:
        return event
    rewritten = _json(b"\n".join(data), keep)
    if rewritten is None:
        return event
    others = [line for line in lines if not line.startswith(b"data:")]
    return b"\n".join([*others, b"data: " + rewritten])


def filtered(body: bytes, content_type: str, keep: Callable[[str], bool]) -> bytes:
    """`body` with every tool whose name `keep` refuses removed from `tools/list` results."""
    if "text/event-stream" in content_type:
        return _sse(body, keep)
    if "json" in content_type:
        return _json(body, keep) or body
    return body
