"""Admission to a protected resource beside the store: the token (core), revocation, scopes.

Shared by the gateway and the forward-auth endpoint. Unlike local JWT validation at the MCP server,
this sees revocation at once: a token revoked at /revoke, or any token of a family revoked by a refresh
replay or sign-out, is refused before its `exp` (`Store.access_token_live`).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from joserfc import jwk

from proxy import audit
from proxy.access_policy import AccessPolicy, PolicyFileError, describe_denial, load_policy
from proxy.claims import identity_claims
from proxy.clients.directory import ClientDirectory
from proxy.errors import StoreUnavailable
from proxy.resource import identity
from proxy.resource.core import (
    InsufficientScope,
    Principal,
    TokenRejected,
    challenge,
    denial_challenge,
    require_scopes,
    verify_access_token,
)
from proxy.resource.policy import Policy, ProtectedResource, build_policy
from proxy.settings import Settings, SettingsError
from proxy.state import SERVICES
from proxy.store import Store
from proxy.web import tracing

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class VerifiedTokens:
    """Tokens whose signature and claims were already checked here, for the resource they were checked for.

    MCP clients send the same token on every request for its whole lifetime; verifying an RS256
    signature each time is most of the gateway's CPU. Keyed by the exact token string (the same bytes
    verify the same way: the keys do not change while the process runs), bounded (LRU), and only until
    `exp`: revocation is still asked of the store on every request."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, str], Principal] = OrderedDict()

    def get(self, token: str, resource: str) -> Principal | None:
        principal = self._entries.get((token, resource))
        if principal is None:
            return None
        if principal.expires_at <= time.time():
            del self._entries[(token, resource)]
            return None
        self._entries.move_to_end((token, resource))
        return principal

    def put(self, token: str, resource: str, principal: Principal) -> None:
        self._entries[(token, resource)] = principal
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)


class FamilyClaims:
    """The identity claims of each grant family (email, preferred_username), read from the store once.

    A family's claims are the sign-in's snapshot and never change while it lives, so the gateway reads
    them once per family, not per request; which of them a request may show is decided per token, by
    its scopes (OIDC Core §5.4). Bounded (LRU)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._entries: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def get(self, family: str) -> dict[str, Any] | None:
        claims = self._entries.get(family)
        if claims is not None:
            self._entries.move_to_end(family)
        return claims

    def put(self, family: str, claims: dict[str, Any]) -> None:
        self._entries[family] = claims
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)


@dataclass(frozen=True)
class Guard:
    """Per-app state of the resource side, built once in `cleanup_ctx`."""

    settings: Settings
    store: Store
    keys: jwk.KeySet
    policy: Policy
    backends: aiohttp.ClientSession  # one pooled session for every gateway backend
    verified: VerifiedTokens
    families: FamilyClaims
    clients: ClientDirectory  # whose registration must still exist for a token to count
    access: AccessPolicy = field(default_factory=AccessPolicy)  # PROXY_POLICY_FILE (proxy/access_policy.py)


GUARD: web.AppKey[Guard] = web.AppKey("resource_guard", Guard)


class Refusal(Exception):
    """A request the resource side turns away; `response()` is what the client (or the proxy) sees."""

    def __init__(self, status: int, error: str, description: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.headers = headers or {}

    def response(self) -> web.Response:
        body = json.dumps({"error": self.error, "error_description": self.description}).encode()
        response = web.Response(status=self.status, body=body, content_type="application/json",
                                headers={**self.headers, **NO_STORE})
        response[tracing.OAUTH_ERROR] = self.error
        return response


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer` header (scheme case-insensitive, RFC 6750 §2.1), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def admit(guard: Guard, resource: ProtectedResource, authorization: str | None,
                needed: Iterable[str] = (), calls: Iterable[tuple[str, str | None]] | None = ()) -> Principal:
    """The caller's principal, or `Refusal`: 401 without/with a bad token, 403 lacking scope, 503 store down.

    Challenges follow MCP 2026-07-28: a 401 names the scopes plain access asks for and `error` only when a
    token was sent; a 403 names every scope the operation needs (RFC 6750 §3.1, RFC 9728 §5.1).
    Then the access policy, on the (method, tool) `calls` of the request (None: not known, every tool
    rule applies): a refusal is 403 `access_denied` naming the rule."""
    token = bearer_token(authorization)
    if token is None:
        header = challenge(resource.metadata_url, scopes=guard.policy.base_scopes)
        raise Refusal(401, "unauthorized", "An access token is required.", {"WWW-Authenticate": header})
    try:
        principal = guard.verified.get(token, resource.url)
        if principal is None:
            principal = verify_access_token(token, keys=guard.keys, issuer=guard.settings.issuer,
                                            resource=resource.url)
            guard.verified.put(token, resource.url, principal)
        if not await guard.store.access_token_live(principal.jti, principal.family,
                                                   guard.clients.registration_of(principal.client_id)):
            raise TokenRejected("the token was revoked")
    except TokenRejected as rejected:
        audit.event("audit.gateway_denied", status=401, reason=rejected.description, resource=resource.url)
        header = challenge(resource.metadata_url, scopes=guard.policy.base_scopes, error="invalid_token",
                           description=rejected.description)
        raise Refusal(401, "invalid_token", rejected.description, {"WWW-Authenticate": header}) from None
    except StoreUnavailable:
        raise Refusal(503, "temporarily_unavailable", "The token store is unavailable; retry later.",
                      {"Retry-After": "2"}) from None
    require(guard, resource, principal, needed, calls)
    return principal


def require(guard: Guard, resource: ProtectedResource, principal: Principal, needed: Iterable[str],
            calls: Iterable[tuple[str, str | None]] | None = ()) -> None:
    """403 `insufficient_scope` (a `Refusal`) unless an admitted caller's token carries every needed scope;
    the challenge names them all (MCP 2026-07-28, RFC 6750 §3.1). Then the access policy on the (method,
    tool) `calls` (None: not known, every tool rule applies): 403 `access_denied` naming the rule."""
    try:
        require_scopes(principal, needed)
    except InsufficientScope as lacking:
        audit.event("audit.gateway_denied", status=403, reason="insufficient_scope", sub=principal.sub,
                    client_id=principal.client_id, resource=resource.url, needed=" ".join(lacking.required))
        header = challenge(resource.metadata_url, scopes=lacking.required, error="insufficient_scope",
                           description="This operation needs more scope.")
        raise Refusal(403, "insufficient_scope", "This operation needs the scope " + " ".join(lacking.required)
                      + ".", {"WWW-Authenticate": header}) from None
    rule = guard.access.denial(principal.claims, resource.url, calls)
    if rule is not None:
        description = describe_denial(rule)
        audit.event("audit.gateway_denied", status=403, reason="policy", rule=rule.name, sub=principal.sub,
                    client_id=principal.client_id, resource=resource.url)
        header = denial_challenge(resource.metadata_url, description)
        raise Refusal(403, "access_denied", description + ".", {"WWW-Authenticate": header})


async def identity_of(guard: Guard, principal: Principal) -> dict[str, str]:
    """The identity headers of a caller admitted by `admit`: `sub`, client and scopes from the token,
    email and username from its sign-in as far as the token's scopes release them (the access token
    itself carries no identity claims)."""
    released: dict[str, Any] = {}
    if principal.family:
        claims = guard.families.get(principal.family)
        if claims is None:
            try:
                family = await guard.store.family_grant(principal.family)
            except StoreUnavailable:
                raise Refusal(503, "temporarily_unavailable", "The token store is unavailable; retry later.",
                              {"Retry-After": "2"}) from None
            claims = {name: value for name, value in ((family.grant.get("claims") or {}) if family else {}).items()
                      if name in identity.CLAIMS}
            if family is not None:
                guard.families.put(principal.family, claims)
        released = identity_claims(claims, " ".join(principal.scopes))
    return identity.identity_headers(principal, released)


def guard_context(settings: Settings) -> Any:
    """`cleanup_ctx` entry: needs the facade's services (keys, store), so it runs after theirs."""

    try:  # read when the app is built: a bad file stops the start, naming the setting
        access = (load_policy(settings.policy_file, resources=settings.effective_resources)
                  if settings.policy_file is not None else AccessPolicy())
    except PolicyFileError as exc:
        raise SettingsError(f"PROXY_POLICY_FILE: {exc}") from None

    async def context(app: web.Application) -> AsyncIterator[None]:
        s = app[SERVICES]
        keys = jwk.KeySet.import_key_set(s.keyset.public_jwks)
        # No total timeout: a stream may last hours. Waiting for the response headers is bounded per
        # request (gateway_timeout_s); connection setup here. auto_decompress off: bytes pass unchanged.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=settings.gateway_timeout_s)
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=30)
        backends = aiohttp.ClientSession(timeout=timeout, connector=connector, auto_decompress=False,
                                         cookie_jar=aiohttp.DummyCookieJar(),
                                         skip_auto_headers=("User-Agent", "Accept-Encoding"),
                                         trace_configs=tracing.client_trace_configs(app, "gateway"))
        app[GUARD] = Guard(settings, s.store, keys, build_policy(settings, s.scopes), backends,
                           VerifiedTokens(), FamilyClaims(), s.clients, access)
        try:
            yield
        finally:
            await backends.close()

    return context
