"""Reading what an MCP request asks for: routing headers against the JSON-RPC body (MCP 2026-07-28)."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.resource.messages import HEADER_MISMATCH, PARSE_ERROR, BadMessage, calls_in, check_routing_headers

names = st.text(min_size=1, max_size=40).filter(lambda text: "\x00" not in text)


def header_form(name: str) -> str:
    """How a client sends `Mcp-Name`: as it is when printable ASCII, else the base64 sentinel."""
    if all(" " <= ch <= "~" for ch in name):
        return name
    return "=?base64?" + base64.b64encode(name.encode()).decode() + "?="


def tool_call(name: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name}}).encode()


@given(names)
def test_headers_that_mirror_the_body_pass(name: str) -> None:
    """Any tool name, ASCII or not, mirrored in Mcp-Name the way the spec encodes it, is accepted."""
    calls = calls_in(tool_call(name))
    check_routing_headers(calls, "tools/call", header_form(name))
    assert [(call.method, call.name) for call in calls] == [("tools/call", name)]


@given(names, names)
def test_a_name_header_naming_another_tool_is_refused(name: str, other: str) -> None:
    """Mcp-Name naming any other tool than the body's is -32020, however it is encoded."""
    if other == name:
        return
    with pytest.raises(BadMessage) as refused:
        check_routing_headers(calls_in(tool_call(name)), "tools/call", header_form(other))
    assert refused.value.code == HEADER_MISMATCH


@given(st.sampled_from(["tools/list", "ping", "prompts/list", "resources/list", "initialize"]))
def test_a_method_header_naming_another_method_is_refused(method: str) -> None:
    """The MCP routing header must name the body's method: a tools/call body under any other method header is
    refused with HEADER_MISMATCH."""
    with pytest.raises(BadMessage) as refused:
        check_routing_headers(calls_in(tool_call("deploy")), method, "deploy")
    assert refused.value.code == HEADER_MISMATCH


def test_no_headers_is_the_earlier_revisions_and_passes() -> None:
    """Clients before 2026-07-28 send neither header: the body alone decides."""
    check_routing_headers(calls_in(tool_call("deploy")), None, None)


@pytest.mark.parametrize("body", [
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"b"}}',
    b'[{"jsonrpc":"2.0","id":1,"method":"ping"},{"id":2,"id":3,"method":"ping"}]',
])
def test_duplicate_keys_anywhere_are_a_parse_error(body: bytes) -> None:
    """Parsers disagree on which duplicate wins, so the gateway refuses them rather than guess."""
    with pytest.raises(BadMessage) as refused:
        calls_in(body)
    assert refused.value.code == PARSE_ERROR
