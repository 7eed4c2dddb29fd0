"""The upstream IdP as the facade sees it: a confidential client's view, one keep-alive session.

Discovery and JWKS are fetched on first use and cached (the JWKS refetched on an unknown `kid`, at
most every few seconds), so the IdP being down at start-up does not stop the facade. Every foreign
failure becomes an `UpstreamError` here and nowhere else. What differs between IdPs is read from the
`Profile`; this module never asks which IdP it is talking to.

Methods that act as a client at the IdP take the *downstream* `client_id`: with PROXY_UPSTREAM_DCR it
selects that client's mirrored upstream registration, otherwise it is ignored.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import aiohttp

from proxy.errors import (
    DocumentNotFound,
    UpstreamClientMissing,
    UpstreamError,
    UpstreamRefused,
    UpstreamUnavailable,
)
from proxy.log import get_logger
from proxy.metrics import UPSTREAM
from proxy.settings import Settings
from proxy.upstream.credentials import MIRROR_FIELD, UpstreamClient, mirror_request
from proxy.upstream.failures import judged
from proxy.upstream.idtoken import IdTokenValidator
from proxy.upstream.policy import Call, Outcome, retry_after
from proxy.upstream.profiles import Profile, upstream_client_secret, upstream_issuer
from proxy.upstream.userapi import user_claims

Json = dict[str, Any]
# Looks up a downstream registration record (Store.load_client): where mirrored credentials live.
ClientLookup = Callable[[str], Awaitable[Json | None]]
log = get_logger()
_BEARER_ERROR = re.compile(r'error="([A-Za-z0-9_]{1,64})"')


@dataclass(frozen=True, slots=True)
class Identity:
    """Who signed in upstream: a stable `sub`, the allow-listed claims, and when."""

    sub: str
    claims: Json
    auth_time: int


@asynccontextmanager
async def upstream_errors(step: str, call: Call = "document") -> AsyncIterator[None]:
    """Map transport failures to protocol errors (httpx's map_httpcore_exceptions shape), and time
    every upstream call for the `oauth_facade_upstream_duration_seconds{step,outcome}` histogram."""
    started = time.perf_counter()
    outcome = "ok"
    try:
        yield
    except TimeoutError as exc:
        outcome = "timeout"
        raise UpstreamUnavailable(detail=f"{step}: timed out", outcome=Outcome(call, "timeout")) from exc
    except aiohttp.ClientError as exc:
        outcome = "unreachable"
        raise UpstreamUnavailable(detail=f"{step}: {type(exc).__name__}: {exc}",
                                  outcome=Outcome(call, "unreachable")) from exc
    except UpstreamError:
        outcome = "error"
        raise
    finally:
        UPSTREAM.labels(step, outcome).observe(time.perf_counter() - started)


def build_basic_header(client_id: str, secret: str) -> str:
    """The `Authorization: Basic` value the facade sends the IdP (RFC 6749 §2.3.1: each half
    form-urlencoded before base64); parse_basic_header in proxy/clients/basic.py reads one."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def _status_error(step: str, response: aiohttp.ClientResponse, call: Call = "document") -> UpstreamError | None:
    """5xx, 408, 429 and an exhausted rate limit (GitHub: 403 with x-ratelimit-remaining 0) are transient;
    the IdP's Retry-After is kept so the client hears it."""
    wait = retry_after(response.headers.get("Retry-After"), now=time.time())
    if response.status >= 500 or response.status in (408, 429):
        return UpstreamUnavailable(detail=f"{step}: HTTP {response.status}", retry_after_s=wait,
                                   outcome=Outcome(call, "answer", response.status, retry_after_s=wait))
    if response.status == 403 and response.headers.get("x-ratelimit-remaining") == "0":
        return UpstreamUnavailable(detail=f"{step}: rate limited", retry_after_s=wait,
                                   outcome=Outcome(call, "rate_limited", 403, retry_after_s=wait))
    return None


def _bearer_error(response: aiohttp.ClientResponse) -> str | None:
    """The `error` of an RFC 6750 §3 challenge (`Bearer error="invalid_token"`), if any."""
    match = _BEARER_ERROR.search(response.headers.get("WWW-Authenticate", ""))
    return match.group(1) if match else None


def _boolean_claims(claims: Json) -> Json:
    """Some IdPs (old Google, Cognito) send email_verified as the string "true"/"false"."""
    value = claims.get("email_verified")
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return {**claims, "email_verified": value.lower() == "true"}
    return claims


def _merged_prompt(current: str | None, added: str) -> str:
    return " ".join(dict.fromkeys([*(current or "").split(), *added.split()]))


class Upstream:
    def __init__(self, settings: Settings, profile: Profile, http: aiohttp.ClientSession, *,
                 clients: ClientLookup | None = None) -> None:
        self.settings = settings
        self.profile = profile
        self.http = http
        self.issuer = upstream_issuer(settings)
        self.client_id = settings.effective_upstream_client_id
        self.client_secret = upstream_client_secret(settings)
        self.static = UpstreamClient(self.client_id, self.client_secret)
        self.mirrors = settings.upstream_dcr and profile.supports_dcr
        self.clients = clients
        self.callback_url = settings.url("/callback")
        self._metadata: Json | None = None
        self._metadata_lock = asyncio.Lock()
        self._authorize_basis_cache: tuple[str, str, dict[str, str]] | None = None
        self.id_tokens = IdTokenValidator(self)

    # -- discovery --------------------------------------------------------------------------------
    async def metadata(self) -> Json:
        if self._metadata is not None:
            return self._metadata
        async with self._metadata_lock:
            if self._metadata is None:
                self._metadata = await self._discover()
        return self._metadata

    async def _discover(self) -> Json:
        explicit = self.profile.explicit_endpoints(self.settings)
        if explicit is not None:
            return explicit.metadata()
        base = self.issuer.rstrip("/")
        *fallbacks, last = self.profile.discovery_paths
        for path in fallbacks:
            try:
                document = await self.get_json(base + path, step="discovery")
                break
            except DocumentNotFound:
                continue
        else:
            document = await self.get_json(base + last, step="discovery")
        if document.get("issuer") not in (self.issuer, *self.profile.accepted_issuers):
            raise UpstreamError(detail=f"discovery issuer {document.get('issuer')!r} != {self.issuer!r}")
        for member in ("authorization_endpoint", "token_endpoint"):
            if not isinstance(document.get(member), str):
                raise UpstreamError(detail=f"discovery document has no {member}")
        return document

    async def accepts_response_issuer(self, iss: str | None) -> bool:
        """RFC 9207 §2.4: an authorization response's `iss` must be the upstream's; when it is absent, the
        answer is accepted only if the upstream does not advertise
        `authorization_response_iss_parameter_supported: true` (then a missing `iss` is a mix-up candidate,
        refused like a wrong one)."""
        if iss is not None:
            return iss in (self.issuer, *self.profile.accepted_issuers)
        return (await self.metadata()).get("authorization_response_iss_parameter_supported") is not True

    # -- HTTP -------------------------------------------------------------------------------------------
    async def get_document(self, url: str, *, step: str, headers: dict[str, str] | None = None) -> Any:
        """GET a JSON document of any shape (GitHub's /user/emails is an array)."""
        call: Call = "bearer" if headers and "Authorization" in headers else "document"
        async with upstream_errors(step, call), self.http.get(url, headers=headers) as response:
            failure = _status_error(step, response, call)
            if failure is not None:
                raise failure
            if response.status == 404:
                raise DocumentNotFound(detail=f"{step}: HTTP 404 at {url}", outcome=Outcome(call, "answer", 404))
            if response.status != 200:
                error = _bearer_error(response)
                raise UpstreamRefused(error or f"http_{response.status}", detail=f"{step}: HTTP {response.status}",
                                      outcome=Outcome(call, "answer", response.status, error))
            raw = await response.read()
        try:
            return json.loads(raw)
        except ValueError:
            raise UpstreamError(detail=f"{step}: body is not JSON", outcome=Outcome(call, "garbled", 200)) from None

    async def get_json(self, url: str, *, step: str, headers: dict[str, str] | None = None) -> Json:
        document = await self.get_document(url, step=step, headers=headers)
        if not isinstance(document, dict):
            call: Call = "bearer" if headers and "Authorization" in headers else "document"
            raise UpstreamError(detail=f"{step}: body is not a JSON object", outcome=Outcome(call, "garbled", 200))
        return document

    def _parse(self, raw: bytes, step: str, call: Call = "token", status: int | None = None) -> Json:
        garbled = Outcome(call, "garbled", status)
        try:
            document = json.loads(raw)
        except ValueError:
            if self.profile.token_accept_json:
                raise UpstreamError(detail=f"{step}: body is not JSON", outcome=garbled) from None
            # RFC 6749 allows nothing else, but old OAuth 2.0 servers answer form-encoded.
            document = dict(parse_qsl(raw.decode("utf-8", "replace")))
        if not isinstance(document, dict):
            raise UpstreamError(detail=f"{step}: body is not a JSON object", outcome=garbled)
        return document

    def auth_method(self, client: UpstreamClient, metadata: Json) -> str:
        if client.auth_method is not None:
            return client.auth_method
        if self.profile.token_auth != "auto":
            return self.profile.token_auth
        supported = metadata.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
        return "client_secret_basic" if "client_secret_basic" in supported else "client_secret_post"

    def _authenticated(self, client: UpstreamClient, metadata: Json, form: dict[str, str]
                       ) -> tuple[dict[str, str], dict[str, str]]:
        """(body, headers) carrying the client's credentials as the IdP wants them (RFC 6749 §2.3.1)."""
        body, headers = dict(form), {"Accept": "application/json"}
        if client.client_secret is None:
            body["client_id"] = client.client_id  # a public client: PKCE is its proof
        elif self.auth_method(client, metadata) == "client_secret_basic":
            headers["Authorization"] = build_basic_header(client.client_id, client.client_secret)
        else:
            body.update(client_id=client.client_id, client_secret=client.client_secret)
        return body, headers

    async def _token_request(self, form: dict[str, str], step: str, client: UpstreamClient, *,
                             timeout_s: float | None = None) -> Json:
        metadata = await self.metadata()
        body, headers = self._authenticated(client, metadata, form)
        # Only when asked: aiohttp reads an explicit timeout=None as "no timeout at all".
        extra: dict[str, Any] = {"timeout": aiohttp.ClientTimeout(total=timeout_s)} if timeout_s else {}
        async with upstream_errors(step, "token"), self.http.post(metadata["token_endpoint"], data=body,
                                                                  headers=headers, **extra) as response:
            failure = _status_error(step, response, "token")
            if failure is not None:
                raise failure
            status = response.status
            document = self._parse(await response.read(), step, "token", status)
        if "error" in document:  # 4xx per RFC 6749 §5.2, or 200 for GitHub
            error = str(document["error"])
            raise UpstreamRefused(error, detail=f"{step}: {error[:64]}",
                                  outcome=Outcome("token", "answer", status, error))
        if not isinstance(document.get("access_token"), str):
            raise UpstreamError(detail=f"{step}: no access_token in the token response",
                                outcome=Outcome("token", "garbled", status))
        return document

    # -- which client the facade is at the IdP ----------------------------------------------------------
    async def client_for(self, client_id: str | None) -> UpstreamClient:
        """The upstream credentials to use on behalf of downstream `client_id`."""
        if not self.mirrors or client_id is None:
            return self.static
        record = await self.clients(client_id) if self.clients is not None else None
        mirrored = (record or {}).get(MIRROR_FIELD)
        if mirrored:
            return UpstreamClient.from_record(mirrored)
        if self.settings.upstream_client_id:  # registered before PROXY_UPSTREAM_DCR was switched on
            return self.static
        raise UpstreamClientMissing(detail=f"{client_id} has no {MIRROR_FIELD}")

    async def advertised_scopes(self) -> list[str] | None:
        advertised = (await self.metadata()).get("scopes_supported")
        return advertised if isinstance(advertised, list) else None

    async def scope(self) -> str:
        return " ".join(self.profile.upstream_scopes(self.settings, await self.advertised_scopes()))

    async def mirror_registration(self, downstream: Json) -> Json:
        """Register `downstream` at the IdP (PROXY_UPSTREAM_DCR); the fields to keep server-side, or {}.

        The IdP's answer is never shown to the downstream client: its secret stays in our record.
        """
        if not self.mirrors:
            return {}
        metadata = await self.metadata()
        endpoint = metadata.get("registration_endpoint")
        if not isinstance(endpoint, str):
            raise UpstreamError(detail="PROXY_UPSTREAM_DCR is on but the upstream has no registration_endpoint")
        request = mirror_request(downstream, redirect_uri=self.callback_url, scope=await self.scope(),
                                 refresh=self.profile.wants_refresh(self.settings))
        step = "upstream_register"
        async with upstream_errors(step), self.http.post(endpoint, json=request,
                                                         headers={"Accept": "application/json"}) as response:
            failure = _status_error(step, response)
            if failure is not None:
                raise failure
            document = self._parse(await response.read(), step)
            status = response.status
        if "error" in document:
            raise UpstreamRefused(str(document["error"]), detail=f"{step}: {document.get('error')}")
        if status not in (200, 201) or not isinstance(document.get("client_id"), str):
            raise UpstreamError(detail=f"{step}: HTTP {status} without a client_id")
        mirrored = UpstreamClient.from_registration(document)
        log.info("upstream.client_registered", upstream_client_id=mirrored.client_id,
                 confidential=mirrored.client_secret is not None)
        return {MIRROR_FIELD: mirrored.record()}

    # -- the authorization-code leg -------------------------------------------------------------------
    async def authorize_url(self, *, state: str, nonce: str, code_challenge: str,
                            extra: dict[str, str] | None = None, client_id: str | None = None) -> str:
        """The IdP's authorize URL; `extra` may carry prompt=login, translated to the profile's word."""
        endpoint, scope, extras = await self._authorize_basis()
        client = await self.client_for(client_id)
        params = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": self.callback_url,
            "scope": scope,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        if self.profile.oidc:
            params["nonce"] = nonce
        params.update(extras)
        for name, value in (extra or {}).items():
            if name == "prompt":
                words = [self.profile.login_prompt if word == "login" else word for word in value.split()]
                params["prompt"] = _merged_prompt(params.get("prompt"), " ".join(words))
            else:
                params[name] = value
        separator = "&" if "?" in endpoint else "?"
        return endpoint + separator + urlencode(params)

    async def _authorize_basis(self) -> tuple[str, str, dict[str, str]]:
        """The authorize endpoint, the scope asked for and the profile's parameters: they depend only on
        the settings and the metadata, which is discovered once, so they are derived once, not per sign-in."""
        if self._authorize_basis_cache is None:
            metadata = await self.metadata()
            advertised = await self.advertised_scopes()
            self._authorize_basis_cache = (metadata["authorization_endpoint"], await self.scope(),
                                           self.profile.authorize_extras(self.settings, advertised))
        return self._authorize_basis_cache

    async def exchange_code(self, code: str, code_verifier: str, *, client_id: str | None = None) -> Json:
        return await self._token_request({
            "grant_type": "authorization_code", "code": code, "redirect_uri": self.callback_url,
            "code_verifier": code_verifier}, "token_exchange", await self.client_for(client_id))

    async def identity(self, tokens: Json, nonce: str, *, client_id: str | None = None) -> Identity:
        """The signed-in user: from a validated id_token, or the user API for OAuth-only IdPs."""
        now = int(time.time())
        if self.profile.oidc:
            id_token = tokens.get("id_token")
            if not isinstance(id_token, str):
                raise UpstreamError(detail="token response has no id_token")
            audience = (await self.client_for(client_id)).client_id
            claims = await self.id_tokens.validate(id_token, nonce=nonce, audience=audience)
            if not any(name in claims for name in self.profile.claims):
                claims = await self._with_userinfo(claims, tokens["access_token"])
        else:
            claims = await user_claims(self, tokens["access_token"])
        claims = _boolean_claims(claims)
        if self.profile.check_claims is not None:
            self.profile.check_claims(claims, self.settings)
        picked = {name: claims[name] for name in self.profile.claims if name in claims}
        auth_time = claims.get("auth_time")
        return Identity(str(claims["sub"]), picked, int(auth_time) if isinstance(auth_time, int) else now)

    async def _with_userinfo(self, claims: Json, access_token: str) -> Json:
        """Some IdPs keep profile claims out of the id_token and serve them at userinfo (OIDC Core §5.4;
        oidc-provider's default). One extra call, only then; best effort: the sign-in stands on `sub`."""
        if not (await self.metadata()).get("userinfo_endpoint"):
            return claims
        try:
            info = await self.userinfo(access_token)
        except UpstreamError as exc:
            log.warning("upstream.userinfo_failed", detail=exc.detail)
            return claims
        if info.get("sub") != claims["sub"]:  # OIDC Core §5.3.2: MUST match, else MUST NOT be used
            log.warning("upstream.userinfo_sub_mismatch")
            return claims
        return {**{name: info[name] for name in self.profile.claims if name in info}, **claims}

    # -- lifecycle ------------------------------------------------------------------------------------
    async def refresh(self, refresh_token: str, *, client_id: str | None = None) -> Json:
        """One upstream refresh, with the generous PROXY_UPSTREAM_REFRESH_TIMEOUT_S: a refresh that times out
        after the IdP processed it leaves the IdP holding a rotated token the facade never saw (README)."""
        return await self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token},
                                         "upstream_refresh", await self.client_for(client_id),
                                         timeout_s=self.settings.upstream_refresh_timeout_s)

    async def revoke(self, token: str, hint: str, *, client_id: str | None = None) -> None:
        """RFC 7009 §2.2: 200 whether or not the token was valid; anything else raises with its outcome."""
        metadata = await self.metadata()
        endpoint = metadata.get("revocation_endpoint")
        if not endpoint:
            return
        client = await self.client_for(client_id)
        body, headers = self._authenticated(client, metadata, {"token": token, "token_type_hint": hint})
        step = "revoke"
        async with upstream_errors(step, "revocation"), self.http.post(endpoint, data=body,
                                                                       headers=headers) as response:
            failure = _status_error(step, response, "revocation")
            if failure is not None:
                raise failure
            raw = await response.read()
            status = response.status
        if status == 200:
            return
        try:
            error = json.loads(raw).get("error")
        except (ValueError, AttributeError):
            error = None
        error = str(error) if error else None
        raise UpstreamRefused(error or f"http_{status}", detail=f"{step}: HTTP {status} {error or ''}".strip(),
                              outcome=Outcome("revocation", "answer", status, error))

    async def revoke_quietly(self, tokens: Json | None, client_id: str) -> None:
        """Revoke the upstream grant behind a revoked family: best effort under the error policy (an
        operator failure is logged as an error and counted), never the client's failure."""
        if not tokens or not tokens.get("refresh_token"):
            return
        try:
            await self.revoke(tokens["refresh_token"], "refresh_token", client_id=client_id)
        except UpstreamError as exc:
            judged(exc, "revoke")

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
