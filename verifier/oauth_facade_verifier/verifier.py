"""The facade's access tokens, checked inside an MCP server written in Python.

`FacadeTokenVerifier` implements the MCP Python SDK's `TokenVerifier` protocol
(`mcp.server.auth.provider`: `async def verify_token(token) -> AccessToken | None`) on top of
`oauth_facade_verifier.core.verify_access_token`, so an SDK server checks tokens exactly as the facade's own
gateway does. It needs no store: a revoked token stays accepted until its `exp` (README, "Protect your
MCP server"); keep `PROXY_ACCESS_TOKEN_TTL_S` short or put the gateway in front where that matters.

The JWKS is found from the facade's RFC 8414 metadata (or given), cached, refetched when a token names
an unknown `kid` (key rotation) and when it grows old. Refetches are rate-limited: a flood of tokens
with made-up `kid`s costs the facade at most one JWKS request per `refetch_interval_s`.

This module imports without the `mcp` package (the facade does not depend on it): the SDK's
`AccessToken` is imported when the first token is verified.
"""

from __future__ import annotations

import asyncio
import http.client
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from joserfc import jwk
from joserfc.errors import JoseError

from oauth_facade_verifier import strictjson
from oauth_facade_verifier.core import Principal, TokenRejected, UnknownKey, verify_access_token

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken

#: A JWKS or metadata document is a few KB; more than this is refused rather than parsed.
MAX_DOCUMENT_BYTES = 512 * 1024

FetchJson = Callable[[str], Awaitable[Any]]


class KeysUnavailable(Exception):
    """The facade's JWKS could not be fetched and none is cached: the server cannot decide (503, not 401:
    a 401 would make clients throw away tokens that may be perfectly good)."""


def metadata_urls(issuer: str) -> list[str]:
    """Where the issuer's metadata lives, in the order MCP clients try (RFC 8414 §3.1 path insertion,
    then OIDC Discovery path insertion and path appending)."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")

    def at(well_known: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, well_known, "", ""))

    urls = [at("/.well-known/oauth-authorization-server" + path), at("/.well-known/openid-configuration" + path)]
    if path:
        urls.append(at(path + "/.well-known/openid-configuration"))
    return urls


def protected_resource_metadata_url(issuer: str, resource: str) -> str:
    """The facade's RFC 9728 document for `resource` (the facade serves one per configured resource, at
    the issuer's origin with the resource's path inserted)."""
    origin = urlsplit(issuer)
    path = urlsplit(resource).path.rstrip("/")
    return urlunsplit((origin.scheme, origin.netloc, "/.well-known/oauth-protected-resource" + path, "", ""))


async def fetch_json(url: str, *, timeout_s: float = 5.0) -> Any:
    """GET a JSON document over http(s), size-capped, in a worker thread (no client session to close)."""
    if urlsplit(url).scheme not in ("https", "http"):
        raise ValueError(f"not an http(s) URL: {url}")

    def get() -> Any:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 (scheme checked)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
                body = response.read(MAX_DOCUMENT_BYTES + 1)
        except http.client.HTTPException as exc:  # a broken HTTP answer is an outage like any other
            raise OSError(f"{url}: {exc!r}") from exc
        if len(body) > MAX_DOCUMENT_BYTES:
            raise ValueError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
        return strictjson.loads(body)

    return await asyncio.to_thread(get)


class FacadeTokenVerifier:
    """An MCP SDK `TokenVerifier` for the facade's RFC 9068 access tokens issued for one resource.

    `issuer` is the facade's issuer exactly as in its metadata (`PROXY_ISSUER`); `resource` this MCP
    server's URL exactly as configured in `PROXY_RESOURCES` (tokens carry it as `aud`).
    """

    def __init__(self, *, issuer: str, resource: str, jwks_uri: str | None = None,
                 leeway_s: int = 30, refetch_interval_s: float = 10.0,
                 max_keys_age_s: float = 3600.0, fetch: FetchJson = fetch_json) -> None:
        self.issuer = issuer
        self.resource = resource
        self.leeway_s = leeway_s
        self.refetch_interval_s = refetch_interval_s
        self.max_keys_age_s = max_keys_age_s
        self.jwks_fetches = 0  # how many times the JWKS was requested; observability and tests
        self._jwks_uri = jwks_uri
        self._fetch = fetch
        self._keys: jwk.KeySet | None = None
        self._keys_fetched_at = 0.0
        self._last_attempt = float("-inf")
        self._lock: asyncio.Lock | None = None

    @property
    def resource_metadata_url(self) -> str:
        """The facade's protected-resource metadata for this resource: what a 401 challenge points to."""
        return protected_resource_metadata_url(self.issuer, self.resource)

    async def verify_token(self, token: str) -> AccessToken | None:
        """The SDK's `AccessToken` for a valid token, None for any invalid one (the SDK answers 401).

        Raises `KeysUnavailable` when no JWKS can be had: the SDK then answers 500, which clients retry,
        rather than 401, which makes them discard their tokens.
        """
        try:
            principal = await self.principal(token)
        except TokenRejected:
            return None
        return access_token_of(token, principal)

    async def principal(self, token: str) -> Principal:
        """The validated caller, or `TokenRejected` (401). Scopes are the caller's to require: the SDK's
        `AuthSettings.required_scopes`, or `oauth_facade_verifier.asgi.BearerAuth` with MCP's 403 challenge."""
        keys = await self._current_keys()
        try:
            principal = self._verify(token, keys)
        except UnknownKey:
            keys = await self._refetch_keys(after=keys)
            principal = self._verify(token, keys)
        return principal

    def _verify(self, token: str, keys: jwk.KeySet) -> Principal:
        return verify_access_token(token, keys=keys, issuer=self.issuer, resource=self.resource,
                                   leeway_s=self.leeway_s)

    async def _current_keys(self) -> jwk.KeySet:
        """The cached keys, refreshed once they are older than `max_keys_age_s` (stale keys are kept
        when the refresh fails, so a facade restart does not take the MCP server down)."""
        keys = self._keys
        if keys is not None and time.monotonic() - self._keys_fetched_at < self.max_keys_age_s:
            return keys
        return await self._refetch_keys(after=keys)

    async def _refetch_keys(self, *, after: jwk.KeySet | None) -> jwk.KeySet:
        """Fetch the JWKS again unless one fetch already did since `after` was read, or the last attempt
        was under `refetch_interval_s` ago. Concurrent callers share one fetch."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._keys is not None and self._keys is not after:
                return self._keys  # another request refetched while this one waited
            if time.monotonic() - self._last_attempt < self.refetch_interval_s:
                return self._usable_keys()
            self._last_attempt = time.monotonic()
            try:
                self._keys = await self._load_keys()
            except (OSError, ValueError, TypeError, KeyError, JoseError) as exc:
                if self._keys is None:
                    raise KeysUnavailable(f"cannot fetch the JWKS of {self.issuer}: {exc}") from exc
                return self._keys
            self._keys_fetched_at = time.monotonic()
            return self._keys

    def _usable_keys(self) -> jwk.KeySet:
        if self._keys is None:
            raise KeysUnavailable(f"no JWKS of {self.issuer} yet; the last fetch failed")
        return self._keys

    async def _load_keys(self) -> jwk.KeySet:
        uri = self._jwks_uri or await self._discover_jwks_uri()
        self.jwks_fetches += 1
        document = await self._fetch(uri)
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError(f"{uri} is not a JWKS")
        # Only public keys usable for signatures; anything else in the set is skipped, not fatal.
        usable = []
        for entry in document["keys"]:
            if not isinstance(entry, dict) or entry.get("kty") == "oct":
                continue
            try:
                usable.append(jwk.import_key(entry))
            except (JoseError, ValueError, TypeError, KeyError):
                continue
        return jwk.KeySet(usable)

    async def _discover_jwks_uri(self) -> str:
        """RFC 8414: the metadata's `issuer` must equal ours (§3.3) before its `jwks_uri` is believed."""
        problems = []
        for url in metadata_urls(self.issuer):
            try:
                document = await self._fetch(url)
            except (OSError, ValueError) as exc:
                problems.append(f"{url}: {exc}")
                continue
            if not isinstance(document, dict) or document.get("issuer") != self.issuer:
                problems.append(f"{url}: issuer is not {self.issuer!r}")
                continue
            uri = document.get("jwks_uri")
            if isinstance(uri, str) and urlsplit(uri).scheme in ("https", "http"):
                self._jwks_uri = uri
                return uri
            problems.append(f"{url}: no jwks_uri")
        raise ValueError("no usable authorization server metadata: " + "; ".join(problems))


def access_token_of(token: str, principal: Principal) -> AccessToken:
    """The SDK's view of a validated token (`subject` and `claims` are kept by SDKs that know them)."""
    from mcp.server.auth.provider import AccessToken  # the SDK is the server's dependency, not the facade's

    return AccessToken(token=token, client_id=principal.client_id, scopes=list(principal.scopes),
                       expires_at=principal.expires_at, resource=principal.resource, subject=principal.sub,
                       claims=dict(principal.claims))


__all__ = ["FacadeTokenVerifier", "KeysUnavailable", "access_token_of", "fetch_json", "metadata_urls",
           "protected_resource_metadata_url"]
