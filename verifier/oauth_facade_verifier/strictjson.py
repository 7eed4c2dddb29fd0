"""JSON that means one thing to every reader: each member name at most once per object, bounded depth.

RFC 8259 §4 leaves duplicate names to each parser ("the last one wins" here, the first elsewhere), so a
document a logger, WAF, pre-validator or MCP server reads with one value and the facade with another
smuggles a registration or a tool call past whichever checked it. I-JSON (RFC 7493 §2.3) says names
MUST be unique; every JSON body the facade judges (registrations, metadata documents it validates,
JSON-RPC bodies the gateway and the ASGI guard authorise, JWT headers and payloads at the resource side)
is parsed here. Knows no HTTP.

RFC 8259 §9 lets a parser limit nesting; CPython's recursive decoder otherwise raises `RecursionError`
(a `RuntimeError` no reader expects: a 500 with a traceback) somewhere near a thousand levels. Nothing
the facade reads is legitimately nested more than a few levels, so MAX_DEPTH is one limit for all,
checked before parsing and refused as `TooDeep`, a `ValueError` every reader already answers.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Arrays and objects nested deeper than this are refused (an MCP tool's arguments included).
MAX_DEPTH = 64
# A JSON string (its brackets do not nest), or one bracket. Unrolled so that long strings stay linear.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


class DuplicateMember(ValueError):
    """A JSON object named one member twice; `str(exc)` is the name."""


class TooDeep(ValueError):
    """Arrays/objects nested deeper than MAX_DEPTH."""

    def __init__(self) -> None:
        super().__init__(f"the JSON is nested deeper than {MAX_DEPTH} levels")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)  # built in C; only a document with a repeated name is walked in Python
    if len(document) != len(pairs):
        seen: set[str] = set()
        for name, _value in pairs:
            if name in seen:
                raise DuplicateMember(name)
            seen.add(name)
    return document


def check_depth(text: str) -> None:
    """`TooDeep` when `text` nests arrays/objects deeper than MAX_DEPTH; brackets inside strings do not
    count. At most as many levels as there are opening brackets, so most documents skip the scan.

    The scan never counts fewer levels than the parser would reach: its strings are JSON's strings, and
    where the text stops being JSON the parser stops too."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise TooDeep()
        elif token in "]}":
            depth -= 1


def loads(text: str | bytes) -> Any:
    """`json.loads`, refusing a repeated member name in any object at any depth (`DuplicateMember`) and
    nesting beyond MAX_DEPTH (`TooDeep`), both `ValueError`s; bytes must be UTF-8 (`UnicodeDecodeError`,
    also a `ValueError`)."""
    text = text.decode("utf-8") if isinstance(text, bytes) else text
    check_depth(text)
    try:
        return json.loads(text, object_pairs_hook=_unique_members)
    except RecursionError:  # not reachable past check_depth; kept so no reader can ever see one
        raise TooDeep() from None
