"""A scripted MCP client for the tests: registers, walks the browser leg, redeems, and checks the
id_token the way a strict client (oauth4webapi) does."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
from joserfc import jwk, jwt

if TYPE_CHECKING:
    from tests.conftest import Facade

REDIRECT_URI = "http://127.0.0.1:5599/callback"


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def query_of(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@dataclass
class Authorization:
    verifier: str
    state: str | None
    nonce: str | None
    redirect_uri: str
    location: str = ""

    @property
    def params(self) -> dict[str, str]:
        return query_of(self.location)


@dataclass
class Client:
    facade: Facade
    client_id: str = ""
    redirect_uri: str = REDIRECT_URI
    cookies: aiohttp.CookieJar = field(default_factory=lambda: aiohttp.CookieJar(unsafe=True))

    @property
    def http(self) -> aiohttp.ClientSession:
        return self.facade.http

    async def register(self, **metadata: Any) -> dict[str, Any]:
        body = {"redirect_uris": [self.redirect_uri], "client_name": "Test client", **metadata}
        async with self.http.post(self.facade.url + "/register", json=body) as response:
            assert response.status == 201, await response.text()
            document: dict[str, Any] = await response.json()
        self.client_id = document["client_id"]
        return document

    def authorize_params(self, *, verifier: str, state: str | None, nonce: str | None,
                         redirect_uri: str | None, **extra: str | None) -> dict[str, str]:
        params: dict[str, str | None] = {
            "response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
            "code_challenge": s256(verifier), "code_challenge_method": "S256", "scope": "openid offline_access",
            "state": state, "nonce": nonce}
        params.update(extra)
        return {k: v for k, v in params.items() if v is not None}

    async def get(self, url: str) -> aiohttp.ClientResponse:
        async with aiohttp.ClientSession(cookie_jar=self.cookies) as browser:
            response = await browser.get(url, allow_redirects=False)
            await response.read()
            return response

    async def post_form(self, url: str, form: dict[str, str]) -> aiohttp.ClientResponse:
        async with aiohttp.ClientSession(cookie_jar=self.cookies) as browser:
            response = await browser.post(url, data=form, allow_redirects=False)
            await response.read()
            return response

    async def start(self, **extra: str | None) -> tuple[aiohttp.ClientResponse, Authorization]:
        """GET /authorize only (first browser hop)."""
        verifier = secrets.token_urlsafe(48)
        redirect_uri = extra.pop("redirect_uri", self.redirect_uri)  # None: not sent
        state = extra.pop("state", "st-" + secrets.token_hex(4)) if "state" in extra else "st-" + secrets.token_hex(4)
        nonce = extra.pop("nonce", "n-" + secrets.token_hex(4)) if "nonce" in extra else "n-" + secrets.token_hex(4)
        auth = Authorization(verifier, state, nonce, redirect_uri or "")
        params = self.authorize_params(verifier=verifier, state=state, nonce=nonce, redirect_uri=redirect_uri,
                                       **extra)
        response = await self.get(self.facade.url + "/authorize?" + urlencode(params))
        return response, auth

    async def follow(self, response: aiohttp.ClientResponse, auth: Authorization) -> Authorization:
        """Follow 302s through the upstream IdP and back until the client's redirect_uri is reached."""
        hops = 0
        while response.status == 302:
            location = response.headers["Location"]
            if not location.startswith(self.facade.url) and not location.startswith(self.facade.idp_url):
                auth.location = location
                return auth
            response = await self.get(location)
            hops += 1
            assert hops < 10
        raise AssertionError(f"the flow stopped at HTTP {response.status}: {await response.text()}")

    async def authorize(self, **extra: str | None) -> Authorization:
        response, auth = await self.start(**extra)
        return await self.follow(response, auth)

    async def token(self, form: dict[str, str], headers: dict[str, str] | None = None
                    ) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
        async with self.http.post(self.facade.url + "/token", data=form, headers=headers) as response:
            body = await response.json(content_type=None)
            return response.status, body, response

    async def exchange(self, auth: Authorization, **overrides: str) -> tuple[int, dict[str, Any]]:
        form = {"grant_type": "authorization_code", "code": auth.params.get("code", ""),
                "code_verifier": auth.verifier, "redirect_uri": auth.redirect_uri, "client_id": self.client_id}
        form.update(overrides)
        status, body, _ = await self.token({k: v for k, v in form.items() if v is not None})
        return status, body

    async def refresh(self, refresh_token: str, **extra: str) -> tuple[int, dict[str, Any]]:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": self.client_id, **extra}
        status, body, _ = await self.token(form)
        return status, body

    async def signed_in(self, **extra: str | None) -> dict[str, Any]:
        """Register (if needed), authorize and redeem: the token response."""
        if not self.client_id:
            await self.register()
        auth = await self.authorize(**extra)
        status, body = await self.exchange(auth)
        assert status == 200, body
        body["_auth"] = auth
        return body

    async def jwks(self) -> jwk.KeySet:
        async with self.http.get(self.facade.url + "/jwks") as response:
            return jwk.KeySet.import_key_set(await response.json())

    async def verify_id_token(self, id_token: str, *, nonce: str | None, access_token: str) -> dict[str, Any]:
        """The checks of oauth4webapi's processAuthorizationCodeResponse + validateApplicationLevelSignature."""
        token = jwt.decode(id_token, await self.jwks(), algorithms=["RS256", "ES256", "PS256"])
        claims = dict(token.claims)
        assert token.header["alg"] == "RS256"
        assert "crit" not in token.header
        assert token.header["kid"] in {key.kid for key in (await self.jwks()).keys}
        assert claims["iss"] == self.facade.url
        assert claims["aud"] == self.client_id
        assert claims["azp"] == self.client_id
        assert isinstance(claims["sub"], str) and claims["sub"]
        now = time.time()
        assert claims["exp"] > now - 30 and claims["iat"] <= now + 30
        if nonce is None:
            assert "nonce" not in claims
        else:
            assert claims["nonce"] == nonce
        digest = hashlib.sha256(access_token.encode()).digest()
        assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
        return claims


async def stored_state(redis: Any) -> dict[str, tuple[str, Any, int]]:
    """Every key with its type, value (strings, hashes, sets, lists, sorted sets) and TTL: a request that
    must change no stored state is checked on contents and lifetimes, not on key names alone."""
    state: dict[str, tuple[str, Any, int]] = {}
    for key in sorted(await redis.keys("*")):
        kind = await redis.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        value: Any = {"string": redis.get, "hash": redis.hgetall, "set": redis.smembers}.get(kind)
        if value is not None:
            value = await value(key)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        state[key] = (kind, value, await redis.ttl(key))
    return state


def assert_unchanged(before: dict[str, tuple[str, Any, int]], after: dict[str, tuple[str, Any, int]]) -> None:
    """Same keys, same values, and no lifetime extended or shortened beyond the seconds that passed."""
    assert sorted(after) == sorted(before)
    for key, (kind, value, ttl) in before.items():
        assert after[key][:2] == (kind, value), key
        later = after[key][2]
        assert (later == ttl == -1) or (ttl - 3 <= later <= ttl), (key, ttl, later)
