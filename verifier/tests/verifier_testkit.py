"""A stand-in for the facade as a resource server sees it, from the standard library and joserfc alone: its
RFC 8414 metadata and JWKS over HTTP on 127.0.0.1 (a thread, since the verifier fetches from a worker
thread), and RFC 9068 access tokens signed with its keys."""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwk, jwt

RESOURCE = "https://mcp.example.com/mcp"


class Issuer:
    """Serves /.well-known/oauth-authorization-server and /jwks until `close()`; `token()` mints."""

    def __init__(self) -> None:
        self.keys = [self._new_key()]
        self.requests: list[str] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests.append(self.path)
                documents = {"/.well-known/oauth-authorization-server": issuer.metadata(), "/jwks": issuer.jwks()}
                body = json.dumps(documents.get(self.path, {"error": "not_found"})).encode()
                self.send_response(200 if self.path in documents else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # port 0: the kernel's, bound at once
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @staticmethod
    def _new_key() -> Any:
        return jwk.ECKey.generate_key("P-256", parameters={"kid": secrets.token_hex(4), "alg": "ES256", "use": "sig"},
                                      private=True)

    def metadata(self) -> dict[str, Any]:
        return {"issuer": self.url, "jwks_uri": self.url + "/jwks"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False) for key in self.keys]}

    def rotate(self) -> None:
        """A new signing key first, the old one still published (as `oauth-facade keys rotate` does)."""
        self.keys.insert(0, self._new_key())

    def token(self, **claims: Any) -> str:
        """An access token as the facade mints it; a claim given as None is left out."""
        now = int(time.time())
        payload = {"iss": self.url, "aud": RESOURCE, "sub": "user-1", "client_id": "client-1",
                   "jti": secrets.token_hex(8), "iat": now, "exp": now + 300, "scope": "openid files:read", **claims}
        key = self.keys[0]
        return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": key.kid},
                          {name: value for name, value in payload.items() if value is not None}, key)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
