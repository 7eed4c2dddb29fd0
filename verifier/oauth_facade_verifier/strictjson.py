"""JSON that means one thing to every reader: each member name at most once per object.

RFC 8259 §4 leaves duplicate names to each parser ("the last one wins" here, the first elsewhere), so a
document a logger, WAF, pre-validator or MCP server reads with one value and the facade with another
smuggles a registration or a tool call past whichever checked it. I-JSON (RFC 7493 §2.3) says names
MUST be unique; every JSON body the facade judges (registrations, metadata documents it validates,
JSON-RPC bodies the gateway and the ASGI guard authorise) is parsed here. Knows no HTTP.
"""

from __future__ import annotations

import json
from typing import Any


class DuplicateMember(ValueError):
    """A JSON object named one member twice; `str(exc)` is the name."""


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for name, value in pairs:
        if name in document:
            raise DuplicateMember(name)
        document[name] = value
    return document


def loads(text: str | bytes) -> Any:
    """`json.loads`, refusing a repeated member name in any object at any depth (`DuplicateMember`,
    a `ValueError`); bytes must be UTF-8 (`UnicodeDecodeError`, also a `ValueError`)."""
    return json.loads(text.decode("utf-8") if isinstance(text, bytes) else text, object_pairs_hook=_unique_members)
