"""A stub upstream OpenID Provider: immediate sign-in, a real RS256 id_token, nothing else.

It validates nothing heavy (the client id of the Basic header, the grant type) because its CPU is
not what is measured; but its id_token is real, signed with RS256 by a 2048-bit key and carrying the
nonce the caller sent at /authorize, so the facade's validation (signature against /jwks, iss, aud,
nonce, exp, iat) runs exactly as against a real IdP.

The authorization code is stateless (`<random>.<nonce>`), so the stub keeps no per-flow memory and
a long run does not grow it. Discovery lists only `client_secret_basic`, so the facade authenticates
that way.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import time
from urllib.parse import parse_qsl, unquote_plus, urlencode

from aiohttp import web
from joserfc import jwk, jwt

from bench.servers.common import run

SUB = "bench-user"
CONFIG: web.AppKey[dict[str, str]] = web.AppKey("config", dict)
KEY: web.AppKey[jwk.RSAKey] = web.AppKey("key", jwk.RSAKey)
BODIES: web.AppKey[dict[str, bytes]] = web.AppKey("bodies", dict)
NO_STORE = {"Cache-Control": "no-store"}


def _json(body: bytes | dict[str, object], status: int = 200) -> web.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    return web.Response(body=raw, status=status, content_type="application/json", headers=NO_STORE)


async def discovery(request: web.Request) -> web.Response:
    return _json(request.app[BODIES]["discovery"])


async def jwks(request: web.Request) -> web.Response:
    return _json(request.app[BODIES]["jwks"])


async def authorize(request: web.Request) -> web.Response:
    """Sign the user in at once: 302 back to the caller's redirect_uri with a code bound to its nonce."""
    query = request.query
    redirect_uri = query.get("redirect_uri", "")
    if not redirect_uri or query.get("client_id") != request.app[CONFIG]["client_id"]:
        return web.Response(status=400, text="unknown client or no redirect_uri")
    code = f"{secrets.token_urlsafe(12)}.{query.get('nonce', '')}"
    params = {"code": code, "state": query.get("state", ""), "iss": request.app[CONFIG]["issuer"]}
    separator = "&" if "?" in redirect_uri else "?"
    return web.Response(status=302, headers={"Location": redirect_uri + separator + urlencode(params)})


def _client_id(request: web.Request, form: dict[str, str]) -> str:
    header = request.headers.get("Authorization", "")
    if header.startswith("Basic "):
        pair = base64.b64decode(header[6:]).decode()
        return unquote_plus(pair.partition(":")[0])
    return form.get("client_id", "")


async def token(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    form = dict(parse_qsl((await request.read()).decode()))
    client_id = _client_id(request, form)
    if client_id != config["client_id"]:
        return _json({"error": "invalid_client"}, 401)
    now = int(time.time())
    body: dict[str, object] = {"access_token": secrets.token_urlsafe(32), "token_type": "Bearer",
                               "expires_in": 3600, "refresh_token": secrets.token_urlsafe(32),
                               "scope": "openid email profile offline_access"}
    grant_type = form.get("grant_type")
    if grant_type == "authorization_code":
        nonce = form.get("code", "").partition(".")[2]
        claims: dict[str, object] = {"iss": config["issuer"], "sub": SUB, "aud": client_id, "iat": now,
                                     "exp": now + 300, "auth_time": now, "email": "bench@example.com",
                                     "email_verified": True, "name": "Bench User"}
        if nonce:
            claims["nonce"] = nonce
        key = request.app[KEY]
        body["id_token"] = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
    elif grant_type != "refresh_token":
        return _json({"error": "unsupported_grant_type"}, 400)
    return _json(body)


def create_app(issuer: str, client_id: str) -> web.Application:
    app = web.Application()
    key = jwk.RSAKey.generate_key(2048, auto_kid=True)
    public = key.as_dict(private=False)
    public.update(alg="RS256", use="sig")
    app[CONFIG] = {"issuer": issuer, "client_id": client_id}
    app[KEY] = key
    app[BODIES] = {
        "jwks": json.dumps({"keys": [public]}).encode(),
        "discovery": json.dumps({
            "issuer": issuer,
            "authorization_endpoint": issuer + "/authorize",
            "token_endpoint": issuer + "/token",
            "jwks_uri": issuer + "/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "scopes_supported": ["openid", "email", "profile", "offline_access"],
        }).encode(),
    }
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    app.router.add_get("/authorize", authorize)
    app.router.add_post("/token", token)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    args = parser.parse_args()
    run(create_app(f"http://127.0.0.1:{args.port}", args.client_id), args.port)


if __name__ == "__main__":
    main()
