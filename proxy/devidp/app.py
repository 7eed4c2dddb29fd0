"""The bundled development IdP: a minimal OpenID Provider that signs in a demo user without a password.

It exists so that `make run`, the tests and the compose stack work with no account anywhere. It speaks
real OIDC (discovery, PKCE S256, signed id_tokens, rotating refresh tokens, userinfo, revocation) so the
facade's upstream code runs unchanged against it. State is in process memory: one process only. It
refuses to exist when ``PROXY_ENV=production``.

`login_hint` picks another user (`sub` = the hint), so tests can sign in several people.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

from aiohttp import web
from joserfc import jwk, jwt

DEMO_USER = {"sub": "demo-user", "email": "demo@example.com", "email_verified": True, "name": "Demo User",
             "preferred_username": "demo"}


class DevIdpRefused(RuntimeError):
    """The development IdP was asked to run in production."""


@dataclass
class DevIdpConfig:
    issuer: str
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    access_token_ttl_s: int = 3600
    # Test knobs: the fake's quirks, switched on by tests of the facade's upstream handling.
    rotate_refresh_tokens: bool = True
    tamper_id_token: bool = False
    wrong_nonce: bool = False


@dataclass
class DevIdpState:
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    access_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    refresh_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)


CONFIG: web.AppKey[DevIdpConfig] = web.AppKey("devidp_config", DevIdpConfig)
STATE: web.AppKey[DevIdpState] = web.AppKey("devidp_state", DevIdpState)
KEY: web.AppKey[jwk.RSAKey] = web.AppKey("devidp_key", jwk.RSAKey)


def _user(login_hint: str | None) -> dict[str, Any]:
    if not login_hint:
        return dict(DEMO_USER)
    return {"sub": login_hint, "email": f"{login_hint}@example.com", "email_verified": True,
            "name": login_hint, "preferred_username": login_hint}


def _oauth_error(error: str, status: int = 400) -> web.Response:
    return web.json_response({"error": error}, status=status, headers={"Cache-Control": "no-store"})


async def discovery(request: web.Request) -> web.Response:
    issuer = request.app[CONFIG].issuer
    return web.json_response({
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "jwks_uri": issuer + "/jwks",
        "userinfo_endpoint": issuer + "/userinfo",
        "revocation_endpoint": issuer + "/revoke",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "email", "profile", "offline_access"],
    })


async def jwks(request: web.Request) -> web.Response:
    public = request.app[KEY].as_dict(private=False)
    public.update(alg="RS256", use="sig")
    return web.json_response({"keys": [public]})


async def authorize(request: web.Request) -> web.Response:
    config, state = request.app[CONFIG], request.app[STATE]
    params = dict(request.query)
    state.authorize_requests.append(params)
    if params.get("client_id") != config.client_id or params.get("redirect_uri") not in config.redirect_uris:
        return web.Response(status=400, text="unknown client or redirect_uri")
    redirect_uri = params["redirect_uri"]
    if params.get("response_type") != "code" or params.get("code_challenge_method") != "S256":
        return _redirect(redirect_uri, {"error": "invalid_request", "state": params.get("state")})
    code = secrets.token_urlsafe(32)
    state.codes[code] = {
        "challenge": params.get("code_challenge"), "nonce": params.get("nonce"),
        "scope": params.get("scope", ""), "user": _user(params.get("login_hint")),
        "redirect_uri": redirect_uri, "expires": time.time() + 60, "auth_time": int(time.time()),
    }
    return _redirect(redirect_uri, {"code": code, "state": params.get("state"), "iss": config.issuer})


def _redirect(uri: str, params: dict[str, str | None]) -> web.Response:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return web.Response(status=302, headers={"Location": f"{uri}?{query}"})


def _client_ok(request: web.Request, form: dict[str, str]) -> bool:
    config = request.app[CONFIG]
    header = request.headers.get("Authorization", "")
    if header.startswith("Basic "):
        try:
            raw = base64.b64decode(header[6:], validate=True).decode()
        except ValueError:
            return False
        client_id, _, secret = raw.partition(":")
        client_id, secret = unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    return client_id == config.client_id and hmac.compare_digest(secret, config.client_secret)


async def token(request: web.Request) -> web.Response:
    config, state = request.app[CONFIG], request.app[STATE]
    form = dict(parse_qsl((await request.read()).decode()))
    state.token_requests.append({k: v for k, v in form.items() if k != "client_secret"})
    if not _client_ok(request, form):
        return _oauth_error("invalid_client", 401)
    if form.get("grant_type") == "authorization_code":
        grant = state.codes.pop(form.get("code", ""), None)
        if grant is None or grant["expires"] < time.time() or grant["redirect_uri"] != form.get("redirect_uri"):
            return _oauth_error("invalid_grant")
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["challenge"]:
            return _oauth_error("invalid_grant")
        return web.json_response(_issue(request, grant, with_id_token=True), headers={"Cache-Control": "no-store"})
    if form.get("grant_type") == "refresh_token":
        presented = form.get("refresh_token", "")
        grant = state.refresh_tokens.get(presented)
        if grant is None:
            return _oauth_error("invalid_grant")
        if config.rotate_refresh_tokens:
            del state.refresh_tokens[presented]
        return web.json_response(_issue(request, grant, with_id_token=False, reuse_refresh=presented),
                                 headers={"Cache-Control": "no-store"})
    return _oauth_error("unsupported_grant_type")


def _issue(request: web.Request, grant: dict[str, Any], *, with_id_token: bool,
           reuse_refresh: str | None = None) -> dict[str, Any]:
    config, state = request.app[CONFIG], request.app[STATE]
    access_token = secrets.token_urlsafe(32)
    state.access_tokens[access_token] = {"user": grant["user"], "expires": time.time() + config.access_token_ttl_s}
    response: dict[str, Any] = {"access_token": access_token, "token_type": "Bearer",
                                "expires_in": config.access_token_ttl_s, "scope": grant["scope"]}
    if "offline_access" in grant["scope"].split():
        refresh = reuse_refresh if (reuse_refresh and not config.rotate_refresh_tokens) else secrets.token_urlsafe(32)
        state.refresh_tokens[refresh] = grant
        response["refresh_token"] = refresh
    if with_id_token:
        now = int(time.time())
        claims = {**grant["user"], "iss": config.issuer, "aud": config.client_id, "iat": now,
                  "exp": now + 300, "auth_time": grant["auth_time"]}
        if grant.get("nonce"):
            claims["nonce"] = "not-" + grant["nonce"] if config.wrong_nonce else grant["nonce"]
        key = request.app[KEY]
        id_token = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
        if config.tamper_id_token:
            head, body, signature = id_token.split(".")
            id_token = ".".join((head, body, signature[::-1]))
        response["id_token"] = id_token
    return response


async def userinfo(request: web.Request) -> web.Response:
    header = request.headers.get("Authorization", "")
    grant = request.app[STATE].access_tokens.get(header.removeprefix("Bearer "))
    if not header.startswith("Bearer ") or grant is None or grant["expires"] < time.time():
        return web.json_response({"error": "invalid_token"}, status=401,
                                 headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return web.json_response(grant["user"])


async def revoke(request: web.Request) -> web.Response:
    form = dict(parse_qsl((await request.read()).decode()))
    state = request.app[STATE]
    if not _client_ok(request, form):
        return _oauth_error("invalid_client", 401)
    state.refresh_tokens.pop(form.get("token", ""), None)
    state.access_tokens.pop(form.get("token", ""), None)
    return web.Response(status=200)


def create_devidp_app(config: DevIdpConfig, *, env: str = "development") -> web.Application:
    if env == "production":
        raise DevIdpRefused("the development IdP refuses to run with PROXY_ENV=production")
    app = web.Application()
    app[CONFIG] = config
    app[STATE] = DevIdpState()
    app[KEY] = jwk.RSAKey.generate_key(2048, auto_kid=True)
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    app.router.add_get("/authorize", authorize)
    app.router.add_post("/token", token)
    app.router.add_get("/userinfo", userinfo)
    app.router.add_post("/revoke", revoke)
    return app
