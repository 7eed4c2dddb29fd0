"""A fake OpenID provider with switchable quirks: Clerk, Google, Auth0 or any generic OIDC IdP.

It signs real RS256 id_tokens (joserfc), checks PKCE and client authentication the way the real IdP
would, and records every request the facade makes: `authorize_requests` (query), `token_requests`
(form, how the client authenticated, the Accept header), `registrations` (RFC 7591 bodies).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote_plus, urlencode

from aiohttp import web
from joserfc import jwk, jwt

OIDC_DISCOVERY = "/.well-known/openid-configuration"
OAUTH_METADATA = "/.well-known/oauth-authorization-server"
USER = {"sub": "user_2abc", "email": "ada@example.com", "email_verified": True, "name": "Ada Lovelace",
        "preferred_username": "ada", "picture": "https://img.example/ada.png"}


@dataclass
class Fault:
    """How one endpoint misbehaves (the upstream error policy's rows): an answer of `status` with `body`
    (a dict is JSON, a str is sent as text/html) and `headers`, after `delay_s`; `drop` closes the
    connection without an answer. `grant_type` limits a token-endpoint fault to that grant."""

    status: int = 503
    body: dict[str, Any] | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False
    grant_type: str | None = None
    times: int | None = None  # None: until cleared
    slow_only: bool = False  # wait delay_s, then answer normally


@dataclass
class OidcQuirks:
    """What makes this fake one IdP rather than another."""

    issuer_suffix: str = ""  # Auth0 publishes its issuer with a trailing '/'
    token_iss: str | None = None  # Google: legacy id_tokens carry iss "accounts.google.com"
    discovery_paths: tuple[str, ...] = (OIDC_DISCOVERY,)  # Clerk documents RFC 8414 metadata
    auth_methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post")
    # What earns a refresh token: the offline_access scope; that scope only with prompt=consent (OIDC Core
    # §11, oidc-provider); Google's access_type=offline.
    offline: Literal["scope", "scope+consent", "access_type"] = "scope"
    rotate_refresh: bool = True  # False: a refresh answer carries no new refresh token (Google)
    registration: bool = False  # an RFC 7591 endpoint at /oauth/register (Clerk DCR)
    secret_for_public: bool = False  # Clerk: a public registration still comes back with a client_secret
    scopes_supported: tuple[str, ...] | None = ("openid", "email", "profile", "offline_access")
    code_challenge_methods: tuple[str, ...] | None = ("S256",)
    grant_types: tuple[str, ...] | None = ("authorization_code", "refresh_token")
    claims: dict[str, Any] = field(default_factory=lambda: dict(USER))
    access_token_ttl_s: int = 3600


@dataclass
class FakeOidc:
    quirks: OidcQuirks = field(default_factory=OidcQuirks)
    base_url: str = ""  # set when the server listens
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    refresh_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    registrations: list[dict[str, Any]] = field(default_factory=list)
    access_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    revocations: list[dict[str, str]] = field(default_factory=list)
    userinfo_requests: int = 0
    faults: dict[str, Fault] = field(default_factory=dict)  # endpoint name (token, revoke, userinfo) -> fault
    fault_hits: list[str] = field(default_factory=list)  # endpoint names, each time a fault answered
    key: jwk.RSAKey = field(default_factory=lambda: jwk.RSAKey.generate_key(2048, auto_kid=True))

    @property
    def issuer(self) -> str:
        return self.base_url + self.quirks.issuer_suffix

    def add_client(self, client_id: str, secret: str | None, redirect_uri: str) -> None:
        self.clients[client_id] = {"secret": secret, "redirect_uris": [redirect_uri]}

    def metadata(self) -> dict[str, Any]:
        base, q = self.base_url, self.quirks
        document: dict[str, Any] = {
            "issuer": self.issuer,
            "authorization_endpoint": base + "/oauth/authorize",
            "token_endpoint": base + "/oauth/token",
            "userinfo_endpoint": base + "/oauth/userinfo",
            "jwks_uri": base + "/.well-known/jwks.json",
            "revocation_endpoint": base + "/oauth/token/revoke",
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": list(q.auth_methods),
        }
        optional = {"scopes_supported": q.scopes_supported, "grant_types_supported": q.grant_types,
                    "code_challenge_methods_supported": q.code_challenge_methods}
        document.update({name: list(value) for name, value in optional.items() if value is not None})
        if q.registration:
            document["registration_endpoint"] = base + "/oauth/register"
        return document


FAKE: web.AppKey[FakeOidc] = web.AppKey("fake_oidc", FakeOidc)


@web.middleware
async def _faults(request: web.Request, handler: Any) -> web.StreamResponse:
    """Misbehave as `FakeOidc.faults` says for this endpoint (its route name)."""
    fake = request.app[FAKE]
    fault = fake.faults.get(request.match_info.route.name or "")
    if fault is not None and fault.grant_type is not None:
        form = dict(parse_qsl((await request.read()).decode()))
        if form.get("grant_type") != fault.grant_type:
            fault = None
    if fault is None:
        return await handler(request)
    if fault.times is not None:
        fault.times -= 1
        if fault.times <= 0:
            del fake.faults[request.match_info.route.name or ""]
    fake.fault_hits.append(request.match_info.route.name or "")
    if fault.delay_s:
        await asyncio.sleep(fault.delay_s)
    if fault.slow_only:
        return await handler(request)
    if fault.drop:
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=500)
    if isinstance(fault.body, dict):
        return web.json_response(fault.body, status=fault.status, headers=fault.headers)
    return web.Response(status=fault.status, text=fault.body or "", headers=fault.headers, content_type="text/html")


def _error(error: str, status: int = 400) -> web.Response:
    return web.json_response({"error": error}, status=status)


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


async def metadata(request: web.Request) -> web.Response:
    fake = request.app[FAKE]
    if request.path not in fake.quirks.discovery_paths:
        raise web.HTTPNotFound()
    return web.json_response(fake.metadata())


async def jwks(request: web.Request) -> web.Response:
    public = request.app[FAKE].key.as_dict(private=False)
    public.update(alg="RS256", use="sig")
    return web.json_response({"keys": [public]})


async def authorize(request: web.Request) -> web.Response:
    """No login page: the user is signed in and consents at once; the code remembers everything."""
    fake = request.app[FAKE]
    params = dict(request.query)
    fake.authorize_requests.append(params)
    client = fake.clients.get(params.get("client_id", ""))
    if client is None or params.get("redirect_uri") not in client["redirect_uris"]:
        return web.Response(status=400, text="unknown client or redirect_uri")
    code = secrets.token_urlsafe(24)
    fake.codes[code] = {"client_id": params["client_id"], "challenge": params.get("code_challenge"),
                        "nonce": params.get("nonce"), "scope": params.get("scope", ""),
                        "redirect_uri": params["redirect_uri"], "access_type": params.get("access_type"),
                        "prompt": params.get("prompt", "")}
    query = urlencode({"code": code, "state": params.get("state", ""), "iss": fake.issuer})
    return web.Response(status=302, headers={"Location": f"{params['redirect_uri']}?{query}"})


def _authenticate(fake: FakeOidc, request: web.Request, form: dict[str, str]) -> tuple[str | None, str]:
    """(client_id or None when authentication fails, the method the caller used)."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Basic "):
        raw = base64.b64decode(header[6:]).decode()
        client_id, _, secret = raw.partition(":")
        client_id, secret, method = unquote_plus(client_id), unquote_plus(secret), "client_secret_basic"
    elif "client_secret" in form:
        client_id, secret, method = form.get("client_id", ""), form["client_secret"], "client_secret_post"
    else:
        client_id, secret, method = form.get("client_id", ""), None, "none"
    client = fake.clients.get(client_id)
    if client is None or (method != "none" and method not in fake.quirks.auth_methods):
        return None, method
    if client["secret"] is None:
        return (client_id if secret is None else None), method
    if secret is None or not hmac.compare_digest(secret, client["secret"]):
        return None, method  # it issued a secret, so it wants it back
    return client_id, method


async def token(request: web.Request) -> web.Response:
    fake = request.app[FAKE]
    form = dict(parse_qsl((await request.read()).decode()))
    client_id, method = _authenticate(fake, request, form)
    fake.token_requests.append({"form": {k: v for k, v in form.items() if k != "client_secret"},
                                "client_id": client_id, "auth": method,
                                "accept": request.headers.get("Accept")})
    if client_id is None:
        return _error("invalid_client", 401)
    if form.get("grant_type") == "authorization_code":
        grant = fake.codes.pop(form.get("code", ""), None)
        if grant is None or grant["client_id"] != client_id or grant["redirect_uri"] != form.get("redirect_uri"):
            return _error("invalid_grant")
        if grant["challenge"] and _s256(form.get("code_verifier", "")) != grant["challenge"]:
            return _error("invalid_grant")
        return web.json_response(_issue(fake, grant, id_token=True))
    if form.get("grant_type") == "refresh_token":
        presented = form.get("refresh_token", "")
        grant = fake.refresh_tokens.get(presented)
        if grant is None or grant["client_id"] != client_id:
            return _error("invalid_grant")
        if fake.quirks.rotate_refresh:
            del fake.refresh_tokens[presented]
        return web.json_response(_issue(fake, grant, id_token=False, refreshing=True))
    return _error("unsupported_grant_type")


def _earns_refresh(fake: FakeOidc, grant: dict[str, Any]) -> bool:
    if fake.quirks.offline == "access_type":
        return grant.get("access_type") == "offline"
    if fake.quirks.offline == "scope+consent" and "consent" not in grant.get("prompt", "").split():
        return False
    return "offline_access" in grant["scope"].split()


def _issue(fake: FakeOidc, grant: dict[str, Any], *, id_token: bool, refreshing: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"access_token": secrets.token_urlsafe(24), "token_type": "Bearer",
                            "expires_in": fake.quirks.access_token_ttl_s, "scope": grant["scope"]}
    fake.access_tokens[body["access_token"]] = grant
    if _earns_refresh(fake, grant) and (not refreshing or fake.quirks.rotate_refresh):
        refresh_token = secrets.token_urlsafe(24)
        fake.refresh_tokens[refresh_token] = grant
        body["refresh_token"] = refresh_token
    if id_token:
        now = int(time.time())
        claims = {**fake.quirks.claims, "iss": fake.quirks.token_iss or fake.issuer, "aud": grant["client_id"],
                  "iat": now, "exp": now + 300}
        if grant.get("nonce"):
            claims["nonce"] = grant["nonce"]
        body["id_token"] = jwt.encode({"alg": "RS256", "kid": fake.key.kid}, claims, fake.key)
    return body


async def register(request: web.Request) -> web.Response:
    """RFC 7591. Clerk's quirk: a client asking for token_endpoint_auth_method "none" gets a secret anyway."""
    fake = request.app[FAKE]
    if not fake.quirks.registration:
        raise web.HTTPNotFound()
    body = await request.json()
    fake.registrations.append(body)
    if not body.get("redirect_uris"):
        return _error("invalid_redirect_uri")
    public = body.get("token_endpoint_auth_method") == "none"
    secret = secrets.token_urlsafe(24) if (not public or fake.quirks.secret_for_public) else None
    client_id = "dyn_" + secrets.token_urlsafe(8)
    fake.clients[client_id] = {"secret": secret, "redirect_uris": list(body["redirect_uris"])}
    answer = {**body, "client_id": client_id, "client_id_issued_at": int(time.time())}
    if secret is not None:
        answer.update(client_secret=secret, client_secret_expires_at=0)
    return web.json_response(answer, status=201)


async def revoke(request: web.Request) -> web.Response:
    fake = request.app[FAKE]
    form = dict(parse_qsl((await request.read()).decode()))
    if _authenticate(fake, request, form)[0] is None:
        return _error("invalid_client", 401)
    fake.revocations.append({"token_type_hint": form.get("token_type_hint", "")})
    fake.refresh_tokens.pop(form.get("token", ""), None)
    return web.Response(status=200)


async def userinfo(request: web.Request) -> web.Response:
    """OIDC Core §5.3 with an RFC 6750 challenge for a token it does not know."""
    fake = request.app[FAKE]
    fake.userinfo_requests += 1
    header = request.headers.get("Authorization", "")
    grant = fake.access_tokens.get(header.removeprefix("Bearer ")) if header.startswith("Bearer ") else None
    if grant is None:
        return web.Response(status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return web.json_response(fake.quirks.claims)


def create_oidc_app(fake: FakeOidc) -> web.Application:
    app = web.Application(middlewares=[_faults])
    app[FAKE] = fake
    for path in (OIDC_DISCOVERY, OAUTH_METADATA):
        app.router.add_get(path, metadata)
    app.router.add_get("/.well-known/jwks.json", jwks)
    app.router.add_get("/oauth/authorize", authorize)
    app.router.add_post("/oauth/token", token, name="token")
    app.router.add_post("/oauth/register", register)
    app.router.add_post("/oauth/token/revoke", revoke, name="revoke")
    app.router.add_get("/oauth/userinfo", userinfo, name="userinfo")
    return app
