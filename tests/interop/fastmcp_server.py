"""A FastMCP server (the `fastmcp` package) accepting the facade's tokens, run as its own process.

Two wirings, as the README shows them:
- `jwtverifier`: FastMCP's own `JWTVerifier` with the facade's JWKS, `issuer` and `audience` = the
  resource, inside `RemoteAuthProvider` naming the facade as the authorization server;
- `bearerauth`: a FastMCP server without auth, wrapped in the facade's `BearerAuth` middleware with
  `FacadeTokenVerifier` (MCP challenges, per-tool scopes).

Usage: python tests/interop/fastmcp_server.py PORT ISSUER RESOURCE jwtverifier|bearerauth
Ready when POST on RESOURCE answers 401; stops on SIGTERM.
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from fastmcp import FastMCP
from fastmcp.server.auth import RemoteAuthProvider
from fastmcp.server.auth.providers.jwt import JWTVerifier
from fastmcp.server.dependencies import get_access_token, get_http_request
from oauth_facade_verifier import BearerAuth, FacadeTokenVerifier, principal_of


def build(issuer: str, resource: str, mode: str) -> Any:
    parts = urlsplit(resource)
    if mode == "jwtverifier":
        verifier = JWTVerifier(jwks_uri=f"{issuer}/jwks", issuer=issuer, audience=resource)
        auth = RemoteAuthProvider(token_verifier=verifier, authorization_servers=[issuer],  # type: ignore[list-item]
                                  base_url=f"{parts.scheme}://{parts.netloc}")
        server = FastMCP("interop-fastmcp", auth=auth)
    else:
        server = FastMCP("interop-fastmcp")

    @server.tool
    def whoami() -> dict[str, Any]:
        """The caller as the server's guard validated it."""
        principal = principal_of(get_http_request().scope)
        if principal is not None:
            return {"guard": "BearerAuth", "sub": principal.sub, "aud": principal.resource}
        token = get_access_token()
        claims = dict(token.claims or {}) if token is not None else {}
        return {"guard": "JWTVerifier", "sub": claims.get("sub"), "aud": claims.get("aud")}

    @server.tool
    def admin() -> str:
        """Needs `mcp:admin` under BearerAuth's per-tool policy."""
        return "admin done"

    app = server.http_app(path=parts.path or "/")
    if mode == "bearerauth":
        return BearerAuth(app, verifier=FacadeTokenVerifier(issuer=issuer, resource=resource),
                          required_scopes=["openid"], tool_scopes={"admin": ["mcp:admin"]})
    return app


def main(argv: list[str]) -> int:
    port, issuer, resource, mode = int(argv[1]), argv[2], argv[3], argv[4]
    config = uvicorn.Config(build(issuer, resource, mode), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on", access_log=False)
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
