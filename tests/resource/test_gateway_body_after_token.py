"""Issue 22 finding 3: the gateway checks the token from the headers before it reads a byte of the body.
An unauthenticated 4 MB POST used to be read and JSON-parsed whole (0.47 s of event-loop time) before its
401, and a slow sender held the request open as long as it liked."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from tests.resource.conftest import GatewayFactory, token_for

SIZE = 4 * 1024 * 1024


async def _post_head_only(url: str, authorization: str | None) -> bytes:
    """Sends a POST announcing SIZE bytes of body, then only the first 64 KiB of it, and reads what comes
    back while it withholds the rest (5 s at most): a server that waits for the body answers nothing."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nContent-Length: {SIZE}\r\n")
    if authorization:
        head += f"Authorization: {authorization}\r\n"
    writer.write(head.encode() + b"\r\n" + b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "'
                 + b"a" * 65_536)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    except TimeoutError:
        return b""
    finally:
        writer.close()


async def test_an_unauthenticated_big_post_is_401_before_its_body_is_read(make_gateway: GatewayFactory) -> None:
    """No token, or a bad one: 401 with the challenge while the client is still holding back 4 MB of body
    (the body limit is set above it, so only the order of the checks can answer early)."""
    facade = await make_gateway(gateway_max_body_bytes=8 * SIZE)
    for authorization in (None, "Bearer not-a-token"):
        head = await _post_head_only(facade.url + "/mcp", authorization)
        assert head.startswith(b"HTTP/1.1 401 "), (authorization, head)
        assert b"www-authenticate: bearer" in head.lower()


async def test_an_admitted_request_still_waits_for_its_body(make_gateway: GatewayFactory) -> None:
    """With a good token the gateway reads the body (it judges the call in it), so the same half-sent
    request gets no answer until the body is complete."""
    facade = await make_gateway(gateway_max_body_bytes=8 * SIZE)
    token = (await token_for(facade))["access_token"]
    assert await _post_head_only(facade.url + "/mcp", f"Bearer {token}") == b""
