"""The bundled development IdP: a minimal OpenID Provider that signs in a demo user without a password.

It exists so that `make run`, the tests and the compose stack work with no account anywhere. It speaks
real OIDC (discovery, PKCE S256, signed id_tokens, rotating refresh tokens, userinfo, revocation) so the
facade's upstream code runs unchanged against it. State is in process memory: one process only. It
refuses to exist when ``PROXY_ENV=production``.

`login_hint` picks another user (`sub` = the hint), so tests can sign in several people. The test knobs
in `DevIdpConfig` make it misbehave the ways real IdPs do (slow, down, garbage, bad id_tokens), and
`rotate_key` rotates its signing key, so the facade's fault handling is tested against a real server.

It is also an enterprise IdP (MCP Enterprise-Managed Authorization, idjag.py): its /token exchanges an
id_token it issued for an Identity Assertion JWT Authorization Grant (RFC 8693, as Okta does), so `make
run` can show the jwt-bearer grant and the tests have a real issuer of ID-JAGs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

from aiohttp import web
from joserfc import jwk, jwt

from proxy.devidp.idjag import DEMO_CLIENT_ID, ID_JAG_TOKEN_TYPE, TOKEN_EXCHANGE, exchange_for_id_jag

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
    # endpoint name (discovery, jwks, authorize, token, userinfo, revoke) -> one of FAULTS
    faults: dict[str, str] = field(default_factory=dict)
    fault_delay_s: float = 5.0  # how long "slow" sleeps before answering normally
    foreign_key: bool = False  # sign id_tokens with a key that is not in /jwks
    id_token_claims: dict[str, Any] = field(default_factory=dict)  # override claims; None removes one
    id_token_alg_none: bool = False  # an unsigned id_token (alg: none)
    discovery_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. a token_endpoint on a closed port
    # As an enterprise IdP (SEP-990 leg 1, see idjag.py): the client_id it stamps into every ID-JAG (the
    # client's id at the facade; `make run`'s demo client by default), the JOSE header and claims
    # overridden in each (None removes a claim).
    id_jag_client_id: str = DEMO_CLIENT_ID
    id_jag_header: dict[str, Any] = field(default_factory=dict)
    id_jag_claims: dict[str, Any] = field(default_factory=dict)
    id_jag_foreign_key: bool = False  # sign ID-JAGs with a key that is not in /jwks
    id_jag_ttl_s: int = 300


@dataclass
class DevIdpState:
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    access_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    refresh_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    arrivals: list[str] = field(default_factory=list)  # endpoint names, in the order requests arrived
    keys: list[jwk.RSAKey] = field(default_factory=list)  # the first signs; all are in /jwks


# What a faulty endpoint answers instead of its real answer.
FAULTS = {
    "slow": "answer normally after fault_delay_s",
    "500": "HTTP 500 with a text body",
    "html": "HTTP 200 with an HTML page",
    "truncated": "HTTP 200 with JSON cut off in the middle",
    "array": "HTTP 200 with a JSON array instead of an object",
}


CONFIG: web.AppKey[DevIdpConfig] = web.AppKey("devidp_config", DevIdpConfig)
STATE: web.AppKey[DevIdpState] = web.AppKey("devidp_state", DevIdpState)


def rotate_key(state: DevIdpState, *, keep_old: bool = True) -> jwk.RSAKey:
    """A new signing key in front (a new kid); the old one stays published unless `keep_old` is False."""
    key = jwk.RSAKey.generate_key(2048, auto_kid=True)
    state.keys[:] = [key, *state.keys] if keep_old else [key]
    return key


@web.middleware
async def _faults(request: web.Request, handler: Any) -> web.StreamResponse:
    """Record the arrival, then misbehave as `DevIdpConfig.faults` says for this endpoint."""
    name = request.match_info.route.name or ""
    request.app[STATE].arrivals.append(name)
    config = request.app[CONFIG]
    fault = config.faults.get(name)
    if fault == "slow":
        await asyncio.sleep(config.fault_delay_s)
    elif fault == "500":
        return web.Response(status=500, text="internal error")
    elif fault == "html":
        return web.Response(text="<html><body>Maintenance</body></html>", content_type="text/html")
    elif fault == "truncated":
        return web.Response(text='{"access_token": "abc", "token_ty', content_type="application/json")
    elif fault == "array":
        return web.json_response(["not", "an", "object"])
    return await handler(request)


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
        "grant_types_supported": ["authorization_code", "refresh_token", TOKEN_EXCHANGE],
        "identity_chaining_requested_token_types_supported": [ID_JAG_TOKEN_TYPE],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "email", "profile", "offline_access"],
        "authorization_response_iss_parameter_supported": True,  # RFC 9207: every answer carries iss
        **request.app[CONFIG].discovery_overrides,
    })


async def jwks(request: web.Request) -> web.Response:
    published = []
    for key in request.app[STATE].keys:
        public = key.as_dict(private=False)
        public.update(alg="RS256", use="sig")
        published.append(public)
    return web.json_response({"keys": published})


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
    if form.get("grant_type") == TOKEN_EXCHANGE:
        return exchange_for_id_jag(config, state, form)
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
        for name, value in config.id_token_claims.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        key = jwk.RSAKey.generate_key(2048, auto_kid=True) if config.foreign_key else state.keys[0]
        id_token = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
        if config.id_token_alg_none:
            id_token = _unsigned(claims)
        if config.tamper_id_token:
            head, body, signature = id_token.split(".")
            id_token = ".".join((head, body, signature[::-1]))
        response["id_token"] = id_token
    return response


def _unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


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
    app = web.Application(middlewares=[_faults])
    app[CONFIG] = config
    app[STATE] = DevIdpState()
    rotate_key(app[STATE])
    app.router.add_get("/.well-known/openid-configuration", discovery, name="discovery")
    app.router.add_get("/jwks", jwks, name="jwks")
    app.router.add_get("/authorize", authorize, name="authorize")
    app.router.add_post("/token", token, name="token")
    app.router.add_get("/userinfo", userinfo, name="userinfo")
    app.router.add_post("/revoke", revoke, name="revoke")
    return app
