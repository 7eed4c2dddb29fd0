"""A document host over real TLS on 127.0.0.1 (certificate from a CA the test makes), whose answers
each test scripts, and a resolver the test controls (the production fetch path is unchanged)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.clients.tls import TestPKI, make_pki
from tests.conftest import free_port

DOC_HOST = "docs.test"


@dataclass
class Answer:
    status: int = 200
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay_s: float = 0.0
    stream_kb: int = 0  # > 0: a chunked body of this many KB, no Content-Length


@dataclass
class DocumentHost:
    """An https server for DOC_HOST; `answers[path]` scripts what it serves, `hits` counts requests."""

    pki: TestPKI
    port: int
    answers: dict[str, Answer] = field(default_factory=dict)
    hits: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)
    down: bool = False
    name: str = DOC_HOST  # "localhost" when the facade resolves it with the system resolver

    def url(self, path: str) -> str:
        return f"https://{self.name}:{self.port}{path}"

    def serve(self, path: str, document: dict[str, Any] | None = None, **answer: Any) -> str:
        """Serve `document` (default: a valid one for this URL) at `path`; returns the client_id URL."""
        url = self.url(path)
        if document is None:
            document = valid_document(url)
        self.answers[path] = Answer(body=json.dumps(document).encode(), **answer)
        return url

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append((request.path, request.headers.get("Host", "")))
        answer = self.answers.get(request.path)
        if self.down or answer is None:
            return web.Response(status=503 if self.down else 404)
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        if answer.stream_kb:
            response = web.StreamResponse(headers=answer.headers)
            response.enable_chunked_encoding()
            await response.prepare(request)
            for _ in range(answer.stream_kb):
                await response.write(b" " * 1024)
            await response.write_eof()
            return response
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


def valid_document(url: str, **members: Any) -> dict[str, Any]:
    """A document as Claude Code publishes one: loopback redirects without a port."""
    return {"client_id": url, "client_name": "Test CLI",
            "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "token_endpoint_auth_method": "none", **members}


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return make_pki(Path(tmp_path_factory.mktemp("pki")), (DOC_HOST, "other.test", "localhost"))


@pytest.fixture
async def doc_host(pki: TestPKI) -> AsyncIterator[DocumentHost]:
    host = DocumentHost(pki, free_port())
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", host.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", host.port, ssl_context=pki.server_context())
    await site.start()
    yield host
    await runner.cleanup()


class ScriptedResolver:
    """Answers host names from a table, and records every question (to prove one lookup per fetch)."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.questions: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.questions.append(host)
        if host not in self.table:
            raise OSError("no such host")
        return list(self.table[host])
