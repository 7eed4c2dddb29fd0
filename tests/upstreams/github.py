"""A fake GitHub (the GitHub Enterprise Server layout, so PROXY_UPSTREAM_ISSUER points the profile at it).

Quirks reproduced: no OIDC at all; the token endpoint answers form-encoded unless asked for JSON, and
its errors come with HTTP 200; credentials only in the body; `scope` comes back comma-separated and
`token_type` lowercase; /user has a numeric id and often `email: null`; /user/emails lists several
addresses of which one is primary and verified; the REST API wants a User-Agent; an exhausted rate
limit is 403 with x-ratelimit-remaining 0.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

USER = {"id": 583231, "login": "ada-renamed", "name": "Ada", "email": None,
        "avatar_url": "https://avatars.example/u/583231"}
EMAILS = [
    {"email": "old@example.com", "primary": False, "verified": True, "visibility": None},
    {"email": "ada@example.com", "primary": True, "verified": True, "visibility": "private"},
    {"email": "unverified@example.com", "primary": False, "verified": False, "visibility": None},
]


@dataclass
class GitHubQuirks:
    user: dict[str, Any] = field(default_factory=lambda: dict(USER))
    emails: list[dict[str, Any]] = field(default_factory=lambda: [dict(e) for e in EMAILS])
    expiring_tokens: bool = False  # the app setting: 8 h tokens with a strictly rotating refresh token
    rate_limited: bool = False


@dataclass
class FakeGitHub:
    client_id: str
    client_secret: str
    redirect_uri: str = ""
    quirks: GitHubQuirks = field(default_factory=GitHubQuirks)
    base_url: str = ""
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # access token -> granted scope
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    api_requests: list[dict[str, Any]] = field(default_factory=list)


FAKE: web.AppKey[FakeGitHub] = web.AppKey("fake_github", FakeGitHub)


def _answer(request: web.Request, body: dict[str, Any]) -> web.Response:
    """Form-encoded by default; JSON only when asked. Errors too, and always HTTP 200."""
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response(body)
    return web.Response(text=urlencode(body), content_type="application/x-www-form-urlencoded")


async def authorize(request: web.Request) -> web.Response:
    fake = request.app[FAKE]
    params = dict(request.query)
    fake.authorize_requests.append(params)
    if params.get("client_id") != fake.client_id:
        return web.Response(status=404, text="Not Found")
    redirect_uri = params.get("redirect_uri") or fake.redirect_uri
    code = secrets.token_hex(10)
    fake.codes[code] = {"challenge": params.get("code_challenge"), "scope": params.get("scope", ""),
                        "redirect_uri": redirect_uri}
    query = urlencode({"code": code, "state": params.get("state", "")})
    return web.Response(status=302, headers={"Location": f"{redirect_uri}?{query}"})


def _issue(fake: FakeGitHub, scope: str) -> dict[str, Any]:
    access_token = "gho_" + secrets.token_hex(18)
    granted = ",".join(scope.split())
    fake.tokens[access_token] = granted
    body: dict[str, Any] = {"access_token": access_token, "token_type": "bearer", "scope": granted}
    if fake.quirks.expiring_tokens:
        refresh_token = "ghr_" + secrets.token_hex(30)
        fake.refresh_tokens[refresh_token] = scope
        body.update(expires_in=28800, refresh_token=refresh_token, refresh_token_expires_in=15897600)
    return body


async def access_token(request: web.Request) -> web.Response:
    fake = request.app[FAKE]
    form = dict(parse_qsl((await request.read()).decode()))
    fake.token_requests.append({"form": {k: v for k, v in form.items() if k != "client_secret"},
                                "secret_in_body": "client_secret" in form,
                                "authorization": request.headers.get("Authorization"),
                                "accept": request.headers.get("Accept")})
    if form.get("client_id") != fake.client_id or not hmac.compare_digest(form.get("client_secret", ""),
                                                                           fake.client_secret):
        return _answer(request, {"error": "incorrect_client_credentials",
                                 "error_description": "The client_id and/or client_secret passed are incorrect."})
    if form.get("grant_type") == "refresh_token":
        scope = fake.refresh_tokens.pop(form.get("refresh_token", ""), None)  # strict single use
        if scope is None:
            return _answer(request, {"error": "bad_refresh_token"})
        return _answer(request, _issue(fake, scope))
    grant = fake.codes.pop(form.get("code", ""), None)
    if grant is None:
        return _answer(request, {"error": "bad_verification_code",
                                 "error_description": "The code passed is incorrect or expired."})
    if form.get("redirect_uri") and form["redirect_uri"] != grant["redirect_uri"]:
        return _answer(request, {"error": "redirect_uri_mismatch"})
    verifier = form.get("code_verifier", "")
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    if grant["challenge"] and digest != grant["challenge"]:
        return _answer(request, {"error": "bad_verification_code"})
    return _answer(request, _issue(fake, grant["scope"]))


def _api_caller(request: web.Request) -> tuple[str | None, web.Response | None]:
    """(granted scope, or an error response) for a REST API call."""
    fake = request.app[FAKE]
    fake.api_requests.append({"path": request.path, "headers": dict(request.headers)})
    if not request.headers.get("User-Agent"):
        return None, web.Response(status=403, text="Request forbidden by administrative rules. "
                                                   "Please make sure your request has a User-Agent header")
    if fake.quirks.rate_limited:
        return None, web.json_response({"message": "API rate limit exceeded"}, status=403,
                                       headers={"x-ratelimit-remaining": "0"})
    header = request.headers.get("Authorization", "")
    scope = fake.tokens.get(header.removeprefix("Bearer ")) if header.startswith("Bearer ") else None
    if scope is None:
        return None, web.json_response({"message": "Bad credentials"}, status=401)
    return scope, None


async def user(request: web.Request) -> web.Response:
    _scope, failure = _api_caller(request)
    return failure or web.json_response(request.app[FAKE].quirks.user)


async def emails(request: web.Request) -> web.Response:
    scope, failure = _api_caller(request)
    if failure is not None:
        return failure
    if "user:email" not in (scope or "").split(","):
        return web.json_response({"message": "Not Found"}, status=404)
    return web.json_response(request.app[FAKE].quirks.emails)


def create_github_app(fake: FakeGitHub) -> web.Application:
    app = web.Application()
    app[FAKE] = fake
    app.router.add_get("/login/oauth/authorize", authorize)
    app.router.add_post("/login/oauth/access_token", access_token)
    app.router.add_get("/api/v3/user", user)
    app.router.add_get("/api/v3/user/emails", emails)
    return app
