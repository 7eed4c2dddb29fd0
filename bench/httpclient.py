"""A minimal HTTP/1.1 keep-alive client on an asyncio Protocol: the load generator's only client.

Why not aiohttp's client: on a 2-core machine the load generator shares the CPU with the servers it
measures, and aiohttp's client spends about as much CPU per request as the hello server it is
supposed to saturate, so the ceiling would measure the client. This client does only what the bench
needs (one request in flight per connection, Content-Length or chunked bodies, no redirects followed
automatically, no cookies, no TLS) for a few tens of microseconds per request.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024


class HttpError(Exception):
    """A transport or framing failure (not an HTTP status: the caller judges statuses)."""


class Response:
    """Status, lower-cased headers (repeated ones joined by '\\n') and the whole body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def location(self) -> str:
        return self.headers.get("location", "")

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:200]!r}>"


class _Protocol(asyncio.Protocol):
    """Parses responses as bytes arrive and completes the one pending future."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.keep_alive = True
        self._head: tuple[int, dict[str, str], int] | None = None  # status, headers, body offset

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            if self._head is not None and "content-length" not in self._head[1] and not self._chunked():
                self._finish(bytes(self.buffer[self._head[2]:]), len(self.buffer))  # body delimited by close
            else:
                self.waiter.set_exception(HttpError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is not None and not self.waiter.done():
            try:
                self._parse()
            except (ValueError, IndexError) as exc:
                self.waiter.set_exception(HttpError(f"unparseable response: {exc}"))

    def _chunked(self) -> bool:
        return self._head is not None and "chunked" in self._head[1].get("transfer-encoding", "")

    def _parse(self) -> None:
        if self._head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    raise ValueError("response head too large")
                return
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            status = int(lines[0][9:12])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                value = value.strip()
                headers[name] = headers[name] + "\n" + value if name in headers else value
            self._head = (status, headers, end + 4)
            self.keep_alive = headers.get("connection", "").lower() != "close"
        status, headers, start = self._head
        length = headers.get("content-length")
        if length is not None:
            stop = start + int(length)
            if len(self.buffer) >= stop:
                self._finish(bytes(self.buffer[start:stop]), stop)
        elif self._chunked():
            self._parse_chunked(start)
        elif status in (204, 304) or 100 <= status < 200:
            self._finish(b"", start)
        # else: the body ends when the connection closes (connection_lost finishes it)

    def _parse_chunked(self, start: int) -> None:
        body = bytearray()
        position = start
        while True:
            line_end = self.buffer.find(b"\r\n", position)
            if line_end < 0:
                return
            size = int(self.buffer[position:line_end].split(b";", 1)[0], 16)
            if size == 0:
                trailer_end = self.buffer.find(b"\r\n\r\n", line_end)
                if trailer_end < 0:
                    return
                self._finish(bytes(body), trailer_end + 4)
                return
            chunk_start = line_end + 2
            if len(self.buffer) < chunk_start + size + 2:
                return
            body += self.buffer[chunk_start:chunk_start + size]
            position = chunk_start + size + 2

    def _finish(self, body: bytes, consumed: int) -> None:
        assert self._head is not None and self.waiter is not None
        status, headers, _ = self._head
        del self.buffer[:consumed]
        self._head = None
        self.waiter.set_result(Response(status, headers, body))


class Connection:
    """One keep-alive connection to host:port, reopened when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.host_header = f"Host: {host}:{port}\r\n".encode()
        self._protocol: _Protocol | None = None

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_Protocol, self.host, self.port)
        return protocol

    async def request(self, method: str, target: str, headers: bytes = b"", body: bytes | None = None) -> Response:
        """Send one request; `headers` are preformatted `Name: value\\r\\n` lines.

        No per-request timeout: a timer per request would cost the client as much as a small parse,
        and the load generator bounds every measurement as a whole instead.
        """
        protocol = self._protocol
        if protocol is None or protocol.closed or not protocol.keep_alive:
            if protocol is not None and protocol.transport is not None:
                protocol.transport.close()
            protocol = self._protocol = await self._open()
        head = f"{method} {target} HTTP/1.1\r\n".encode() + self.host_header + headers
        if body is not None:
            head += b"Content-Length: %d\r\n" % len(body)
        assert protocol.transport is not None
        protocol.transport.write(head + b"\r\n" + (body or b""))
        protocol.waiter = asyncio.get_running_loop().create_future()
        if protocol.buffer:
            protocol.data_received(b"")  # bytes that arrived early (never expected, but never lost)
        try:
            return await protocol.waiter
        except BaseException:
            protocol.transport.close()
            self._protocol = None
            raise

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None


FORM = b"Content-Type: application/x-www-form-urlencoded\r\n"
JSON = b"Content-Type: application/json\r\n"


class Session:
    """A virtual user's connections, one per origin, reused for every request it makes."""

    def __init__(self) -> None:
        self._connections: dict[tuple[str, int], Connection] = {}
        self._parsed: dict[str, tuple[Connection, str]] = {}  # repeated URLs (GET figures) parse once

    def _connection(self, url: str) -> tuple[Connection, str]:
        known = self._parsed.get(url)
        if known is not None:
            return known
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        connection = self._connections.get((host, port))
        if connection is None:
            connection = self._connections[(host, port)] = Connection(host, port)
        target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        if not parts.query and len(self._parsed) < 64:
            self._parsed[url] = (connection, target)
        return connection, target

    async def get(self, url: str, headers: bytes = b"") -> Response:
        connection, target = self._connection(url)
        return await connection.request("GET", target, headers)

    async def post(self, url: str, body: bytes, headers: bytes = FORM) -> Response:
        connection, target = self._connection(url)
        return await connection.request("POST", target, headers, body)

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
        self._parsed.clear()
