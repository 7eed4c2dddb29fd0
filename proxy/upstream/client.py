"""The upstream IdP as the facade sees it: a confidential client's view, one keep-alive session.

Discovery and JWKS are fetched on first use and cached (the JWKS refetched on an unknown `kid`, at
most every few seconds), so the IdP being down at start-up does not stop the facade. Every foreign
failure becomes an `UpstreamError` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import aiohttp

from proxy.errors import UpstreamError, UpstreamRefused, UpstreamUnavailable
from proxy.settings import Settings
from proxy.upstream.idtoken import IdTokenValidator
from proxy.upstream.profiles import Profile

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who signed in upstream: a stable `sub`, the allow-listed claims, and when."""

    sub: str
    claims: Json
    auth_time: int


@asynccontextmanager
async def upstream_errors(step: str) -> AsyncIterator[None]:
    """Map transport failures to protocol errors (httpx's map_httpcore_exceptions shape)."""
    try:
        yield
    except TimeoutError as exc:
        raise UpstreamUnavailable(detail=f"{step}: timed out") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamUnavailable(detail=f"{step}: {type(exc).__name__}: {exc}") from exc


def basic_credentials(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: each half form-urlencoded before base64."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


class Upstream:
    def __init__(self, settings: Settings, profile: Profile, http: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.profile = profile
        self.http = http
        self.issuer = settings.upstream_issuer or profile.default_issuer or settings.effective_upstream_issuer
        self.client_id = settings.effective_upstream_client_id
        self.client_secret = settings.effective_upstream_client_secret
        self.callback_url = settings.url("/callback")
        self._metadata: Json | None = None
        self._metadata_lock = asyncio.Lock()
        self.id_tokens = IdTokenValidator(self)
        scopes = list(profile.upstream_scopes) + list(settings.upstream_scopes)
        if profile.offline_scope:
            scopes.append(profile.offline_scope)
        self.scopes = " ".join(dict.fromkeys(scopes))

    # -- discovery --------------------------------------------------------------------------------
    async def metadata(self) -> Json:
        if self._metadata is not None:
            return self._metadata
        async with self._metadata_lock:
            if self._metadata is None:
                self._metadata = await self._discover()
        return self._metadata

    async def _discover(self) -> Json:
        if self.profile.endpoints is not None:
            return {k: v for k, v in vars(self.profile.endpoints).items() if v}
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await self.get_json(url, step="discovery")
        if document.get("issuer") not in (self.issuer, *self.profile.accepted_issuers):
            raise UpstreamError(detail=f"discovery issuer {document.get('issuer')!r} != {self.issuer!r}")
        for member in ("authorization_endpoint", "token_endpoint"):
            if not isinstance(document.get(member), str):
                raise UpstreamError(detail=f"discovery document has no {member}")
        return document

    # -- HTTP -------------------------------------------------------------------------------------------
    async def get_json(self, url: str, *, step: str, headers: dict[str, str] | None = None) -> Json:
        async with upstream_errors(step), self.http.get(url, headers=headers) as response:
            if response.status >= 500 or response.status == 429:
                raise UpstreamUnavailable(detail=f"{step}: HTTP {response.status}")
            if response.status != 200:
                raise UpstreamError(detail=f"{step}: HTTP {response.status}")
            return await self._json(response, step)

    async def _json(self, response: aiohttp.ClientResponse, step: str) -> Json:
        raw = await response.read()
        try:
            document = json.loads(raw)
        except ValueError:
            if self.profile.token_accept_json:
                raise UpstreamError(detail=f"{step}: body is not JSON") from None
            # RFC 6749 allows nothing else, but old OAuth 2.0 servers answer form-encoded.
            document = dict(parse_qsl(raw.decode("utf-8", "replace")))
        if not isinstance(document, dict):
            raise UpstreamError(detail=f"{step}: body is not a JSON object")
        return document

    async def _token_request(self, form: dict[str, str], step: str) -> Json:
        metadata = await self.metadata()
        headers = {"Accept": "application/json"}
        body = dict(form)
        if self.client_secret is not None:
            if self._auth_method(metadata) == "client_secret_basic":
                headers["Authorization"] = basic_credentials(self.client_id, self.client_secret)
            else:
                body.update(client_id=self.client_id, client_secret=self.client_secret)
        else:
            body["client_id"] = self.client_id
        async with upstream_errors(step), self.http.post(metadata["token_endpoint"], data=body,
                                                         headers=headers) as response:
            if response.status >= 500 or response.status == 429:
                raise UpstreamUnavailable(detail=f"{step}: HTTP {response.status}")
            document = await self._json(response, step)
        if "error" in document:  # 4xx per RFC 6749 §5.2, or 200 for GitHub
            raise UpstreamRefused(str(document["error"]), detail=f"{step}: {document.get('error')}")
        if not isinstance(document.get("access_token"), str):
            raise UpstreamError(detail=f"{step}: no access_token in the token response")
        return document

    def _auth_method(self, metadata: Json) -> str:
        if self.profile.token_auth != "auto":
            return self.profile.token_auth
        supported = metadata.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
        return "client_secret_basic" if "client_secret_basic" in supported else "client_secret_post"

    # -- the authorization-code leg -------------------------------------------------------------------
    async def authorize_url(self, *, state: str, nonce: str, code_challenge: str,
                            extra: dict[str, str] | None = None) -> str:
        metadata = await self.metadata()
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.callback_url,
            "scope": self.scopes,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        if self.profile.oidc:
            params["nonce"] = nonce
        params.update(self.profile.extra_authorize_params)
        if self.profile.authorize_params is not None:
            params.update(self.profile.authorize_params(self.settings))
        params.update(extra or {})
        separator = "&" if "?" in metadata["authorization_endpoint"] else "?"
        return metadata["authorization_endpoint"] + separator + urlencode(params)

    async def exchange_code(self, code: str, code_verifier: str) -> Json:
        return await self._token_request({
            "grant_type": "authorization_code", "code": code, "redirect_uri": self.callback_url,
            "code_verifier": code_verifier}, "token_exchange")

    async def identity(self, tokens: Json, nonce: str) -> Identity:
        """The signed-in user: from a validated id_token, or the user API for OAuth-only IdPs."""
        now = int(time.time())
        if self.profile.oidc:
            id_token = tokens.get("id_token")
            if not isinstance(id_token, str):
                raise UpstreamError(detail="token response has no id_token")
            claims = await self.id_tokens.validate(id_token, nonce=nonce)
        else:
            claims = await self.user_api(tokens["access_token"])
        if self.profile.check_claims is not None:
            self.profile.check_claims(claims, self.settings)
        picked = {name: claims[name] for name in self.profile.claims if name in claims}
        auth_time = claims.get("auth_time")
        return Identity(str(claims["sub"]), picked, int(auth_time) if isinstance(auth_time, int) else now)

    async def user_api(self, access_token: str) -> Json:
        """An OAuth 2.0 IdP's user endpoint, normalised to OIDC claim names."""
        metadata = await self.metadata()
        user = await self.get_json(metadata["userinfo_endpoint"], step="user_api", headers={
            "Authorization": f"Bearer {access_token}", "Accept": "application/json"})
        if "sub" not in user and "id" in user:
            user = {"sub": str(user["id"]), "preferred_username": user.get("login"), "name": user.get("name"),
                    "email": user.get("email"), "picture": user.get("avatar_url")}
        if "sub" not in user:
            raise UpstreamError(detail="user API answered without an id")
        return {name: value for name, value in user.items() if value is not None}

    # -- lifecycle ------------------------------------------------------------------------------------
    async def refresh(self, refresh_token: str) -> Json:
        return await self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token},
                                         "upstream_refresh")

    async def revoke(self, token: str, hint: str) -> None:
        """Best effort (RFC 7009): a failure upstream is logged by the caller, never fatal."""
        metadata = await self.metadata()
        endpoint = metadata.get("revocation_endpoint")
        if not endpoint:
            return
        form = {"token": token, "token_type_hint": hint}
        headers = {}
        if self.client_secret is not None:
            headers["Authorization"] = basic_credentials(self.client_id, self.client_secret)
        else:
            form["client_id"] = self.client_id
        async with upstream_errors("revoke"), self.http.post(endpoint, data=form, headers=headers) as response:
            await response.read()

    async def userinfo(self, access_token: str) -> Json:
        metadata = await self.metadata()
        endpoint = metadata.get("userinfo_endpoint")
        if not endpoint:
            raise UpstreamError(detail="the upstream has no userinfo endpoint")
        return await self.get_json(endpoint, step="userinfo", headers={"Authorization": f"Bearer {access_token}"})


def token_set(response: Json, previous: Json | None = None) -> Json:
    """What the facade keeps of an upstream token response; a missing refresh token keeps the old one."""
    now = int(time.time())
    expires_in = response.get("expires_in")
    try:
        expires_at = now + int(expires_in) if expires_in is not None else None
    except (TypeError, ValueError):
        expires_at = None
    refresh_token = response.get("refresh_token") or (previous or {}).get("refresh_token")
    kept = {"access_token": response["access_token"], "expires_at": expires_at, "refresh_token": refresh_token}
    return {name: value for name, value in kept.items() if value is not None}
