"""Client metadata documents for the interop clients, served over TLS on https://localhost:<port>
with the certificate of the stack's CA (the facade trusts it through PROXY_CIMD_CA_FILE)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.interop.stack import InteropStack, free_port


@dataclass
class MetadataHost:
    port: int
    documents: dict[str, bytes] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)

    def publish(self, path: str, client_name: str) -> str:
        """A document at `path` listing the port-less loopback redirect (as Claude Code's does);
        returns its URL, the client_id."""
        url = f"https://localhost:{self.port}{path}"
        self.documents[path] = json.dumps({
            "client_id": url, "client_name": client_name, "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "token_endpoint_auth_method": "none"}).encode()
        return url

    def url(self, path: str) -> str:
        return f"https://localhost:{self.port}{path}"

    def publish_json(self, path: str, document: dict[str, Any]) -> str:
        """Any JSON at `path` (a private_key_jwt document, a key set); returns its URL."""
        self.documents[path] = json.dumps(document).encode()
        return self.url(path)

    async def handle(self, request: web.Request) -> web.Response:
        self.fetched.append(request.path)
        body = self.documents.get(request.path)
        if body is None:
            return web.Response(status=404)
        return web.Response(body=body, content_type="application/json")


@asynccontextmanager
async def metadata_host(stack: InteropStack) -> AsyncIterator[MetadataHost]:
    host = MetadataHost(free_port())
    app = web.Application()
    app.router.add_get("/{tail:.*}", host.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", host.port, ssl_context=stack.pki.server_context()).start()
    try:
        yield host
    finally:
        await runner.cleanup()
