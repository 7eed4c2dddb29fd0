"""The protected MCP endpoint of the interoperability suite, run as its own process.

The MCP protocol is the official SDK's own server (`MCPServer`, streamable HTTP). The OAuth half is
the facade's Python verifier, wired exactly as the README's "Protect your MCP server → Python verifier"
tells users to:
- `FacadeTokenVerifier` as the SDK's `token_verifier`, with `AuthSettings` naming the facade and this
  resource (the SDK then validates every request's token with it);
- mode `middleware` (the default) also wraps the app in `BearerAuth`, which answers the MCP 2026-07-28
  challenges the SDK gets wrong (401 without `error` when no token was sent, 403 with `scope`) and
  applies a per-tool scope policy: the `admin` tool needs `mcp:admin`;
- mode `sdk` is the SDK wiring alone, to show that it works without the middleware.

Usage: python tests/interop/mcp_server.py PORT ISSUER RESOURCE [middleware|sdk]
MCP_REQUIRED_SCOPES (space separated, default `openid`): the scopes every request's token needs; the
stack's machine endpoint sets it empty (a client_credentials token carries no user scope).
Ready when POST on RESOURCE answers 401; stops on SIGTERM.
"""

from __future__ import annotations

import os
import sys
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from oauth_facade_verifier import BearerAuth, FacadeTokenVerifier, principal_of

REQUIRED_SCOPES = os.environ.get("MCP_REQUIRED_SCOPES", "openid").split()
TOOL_SCOPES = {"admin": ["mcp:admin"]}


def build(issuer: str, resource: str, mode: str = "middleware") -> Any:
    verifier = FacadeTokenVerifier(issuer=issuer, resource=resource)
    server = MCPServer(name="interop-mcp", instructions="The oauth-facade interoperability suite's MCP server.",
                       token_verifier=verifier,
                       auth=AuthSettings(issuer_url=issuer, resource_server_url=resource,
                                         required_scopes=REQUIRED_SCOPES, validate_token_resource=True))

    @server.tool()
    async def whoami(ctx: Context) -> dict[str, Any]:
        """Who the facade says is calling: the validated access token's subject, client, token id and
        audience, as the SDK hands them to a tool, and which guard checked it."""
        token = get_access_token()
        claims = dict(token.claims or {}) if token is not None else {}
        principal = principal_of(getattr(ctx.request_context.request, "scope", {}))
        identity = {name: claims.get(name) for name in ("sub", "client_id", "jti", "scope", "aud")}
        identity["guard"] = "BearerAuth" if principal is not None else "sdk"
        identity["principal_sub"] = principal.sub if principal is not None else None
        return identity

    @server.tool()
    async def admin() -> str:
        """A tool only tokens with the `mcp:admin` scope may call (per-tool policy of BearerAuth)."""
        return "admin done"

    app = server.streamable_http_app(streamable_http_path=urlsplit(resource).path or "/", host="127.0.0.1")
    if mode == "sdk":
        return app
    return BearerAuth(app, verifier=verifier, required_scopes=REQUIRED_SCOPES, tool_scopes=TOOL_SCOPES)


def main(argv: list[str]) -> int:
    port, issuer, resource = int(argv[1]), argv[2], argv[3]
    mode = argv[4] if len(argv) > 4 else "middleware"
    config = uvicorn.Config(build(issuer, resource, mode), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on", access_log=False)
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
