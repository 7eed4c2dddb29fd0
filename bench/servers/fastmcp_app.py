"""FastMCP's OAuthProxy in front of the bench's stub IdP, for the "a flow ≥ 10× FastMCP" comparison.

Run by the bench with the interpreter of bench/.fastmcp-venv (FastMCP's dependencies must not enter
the project's venv), as a plain script: it imports nothing from the project.

Configured as the facade is, and as generously as FastMCP allows: one uvicorn process with uvloop
and httptools, no access log, warnings only; its state in the same redis-server (RedisStore, no
encryption wrapper); consent off (`require_authorization_consent=False`, like PROXY_CONSENT=off);
a 32-byte `jwt_signing_key` so no PBKDF2 runs at start-up. FastMCP signs its own tokens with HS256
and does not validate the upstream id_token at the callback, so it does less cryptography per flow
than the facade (which verifies one RS256 signature and makes two).
"""

from __future__ import annotations

import argparse
import logging

import uvicorn
from fastmcp import FastMCP
from fastmcp.server.auth.oauth_proxy import OAuthProxy
from fastmcp.server.auth.providers.jwt import JWTVerifier
from key_value.aio.stores.redis import RedisStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-issuer", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    upstream = args.upstream_issuer
    auth = OAuthProxy(
        upstream_authorization_endpoint=upstream + "/authorize",
        upstream_token_endpoint=upstream + "/token",
        upstream_client_id=args.client_id,
        upstream_client_secret=args.client_secret,
        token_verifier=JWTVerifier(jwks_uri=upstream + "/jwks", issuer=upstream, audience=args.client_id),
        base_url=base,
        client_storage=RedisStore(url=args.redis_url),
        jwt_signing_key=b"b" * 32,
        require_authorization_consent=False,
    )
    mcp = FastMCP("bench", auth=auth)

    @mcp.tool
    def ping() -> str:
        """A tool, so the server is a real MCP server."""
        return "pong"

    logging.getLogger().setLevel(logging.WARNING)
    uvicorn.run(mcp.http_app(), host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
