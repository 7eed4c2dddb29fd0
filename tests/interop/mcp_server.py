"""The protected MCP endpoint of the interoperability suite, run as its own process.

The MCP protocol is the official SDK's own server (`MCPServer`, streamable HTTP), so whatever protocol
revision the SDK client negotiates, its server speaks it. In front of it sits the resource-server half
of OAuth that the facade leaves to MCP servers, written the way the README tells operators to: every
request needs `Authorization: Bearer <facade access token>`, validated as an RFC 9068 JWT (`typ`
at+jwt, signature against the facade's JWKS, `iss` = the facade, `aud` = this endpoint's URL, not
expired). Without one the answer is 401 with `WWW-Authenticate: Bearer resource_metadata="<the
facade's RFC 9728 document for this URL>"`, which is where an MCP client starts its OAuth flow.

Usage: python tests/interop/mcp_server.py PORT ISSUER RESOURCE
Ready when GET on RESOURCE answers (401); stops on SIGTERM.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import anyio
import uvicorn
from joserfc import jwk, jwt
from joserfc.errors import JoseError
from mcp.server.mcpserver import Context, MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send

ALGORITHMS = ["RS256", "PS256", "ES256"]
CLAIMS_KEY = "interop.claims"


class BearerGate:
    """ASGI middleware: 401 + RFC 9728 challenge unless the request carries a valid facade token."""

    def __init__(self, app: ASGIApp, *, issuer: str, resource: str) -> None:
        self.app = app
        self.issuer = issuer
        self.resource = resource
        path = urlsplit(resource).path.rstrip("/")
        self.metadata_url = f"{issuer}/.well-known/oauth-protected-resource{path}"
        self._keys: jwk.KeySet | None = None

    def _fetch_keys(self) -> jwk.KeySet:
        with urllib.request.urlopen(self.issuer + "/jwks", timeout=5) as response:
            return jwk.KeySet.import_key_set(json.loads(response.read()))

    async def keys(self, *, refresh: bool = False) -> jwk.KeySet:
        """The facade's JWKS, fetched on first use and again when a token names an unknown `kid`."""
        if self._keys is None or refresh:
            self._keys = await anyio.to_thread.run_sync(self._fetch_keys)
        return self._keys

    async def claims(self, token: str) -> dict[str, Any]:
        """The access token's claims; JoseError/ValueError when it is not one the facade minted for us."""
        keys = await self.keys()
        try:
            decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
        except JoseError:
            decoded = jwt.decode(token, await self.keys(refresh=True), algorithms=ALGORITHMS)
        if decoded.header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
            raise ValueError(f"typ is {decoded.header.get('typ')!r}, not at+jwt")
        claims = dict(decoded.claims)
        audiences = claims.get("aud") if isinstance(claims.get("aud"), list) else [claims.get("aud")]
        if claims.get("iss") != self.issuer:
            raise ValueError(f"iss {claims.get('iss')!r} is not {self.issuer!r}")
        if self.resource not in audiences:
            raise ValueError(f"aud {claims.get('aud')!r} does not contain {self.resource!r}")
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= time.time():
            raise ValueError("expired")
        return claims

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            await self._challenge(send, None)
            return
        try:
            claims = await self.claims(token.strip())
        except (JoseError, ValueError) as exc:
            await self._challenge(send, f"{type(exc).__name__}: {exc}")
            return
        scope.setdefault("state", {})[CLAIMS_KEY] = claims
        await self.app(scope, receive, send)

    async def _challenge(self, send: Send, problem: str | None) -> None:
        """RFC 6750 §3 + RFC 9728 §5.1; `error="invalid_token"` only when a token was presented."""
        parts = [f'resource_metadata="{self.metadata_url}"']
        if problem is not None:
            parts.insert(0, 'error="invalid_token"')
            parts.insert(1, f'error_description="{problem.replace(chr(34), chr(39))[:200]}"')
        body = json.dumps({"error": "invalid_token" if problem else "unauthorized", "detail": problem}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"www-authenticate", ("Bearer " + ", ".join(parts)).encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]})
        await send({"type": "http.response.body", "body": body})


def build(issuer: str, resource: str) -> BearerGate:
    server = MCPServer(name="interop-mcp", instructions="The oauth-facade interoperability suite's MCP server.")

    @server.tool()
    async def whoami(ctx: Context) -> dict[str, Any]:
        """Who the facade says is calling: the validated access token's subject, client and token id."""
        request = ctx.request_context.request
        claims: dict[str, Any] = dict(getattr(request, "scope", {}).get("state", {}).get(CLAIMS_KEY, {}))
        return {name: claims.get(name) for name in ("sub", "client_id", "jti", "scope", "aud")}

    path = urlsplit(resource).path or "/"
    app = server.streamable_http_app(streamable_http_path=path, host="127.0.0.1")
    return BearerGate(app, issuer=issuer, resource=resource)


def main(argv: list[str]) -> int:
    port, issuer, resource = int(argv[1]), argv[2], argv[3]
    config = uvicorn.Config(build(issuer, resource), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
