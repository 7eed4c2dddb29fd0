"""The user's upstream tokens, kept fresh under the upstream error policy (proxy/upstream/policy.py).

Three callers need the upstream refreshed: a client's refresh (PROXY_UPSTREAM_REFRESH=with-client), an
RFC 8693 token exchange by a resource server, and fresh /userinfo. All go through `refresh_upstream`, so
a failure means the same everywhere: terminal ends the family (invalid_grant), operator and transient
keep it (503 with Retry-After). One refresh per family at a time (a lock in the store): a second
refresh of a rotating upstream refresh token would look like reuse to the IdP.

`upstream_access_token` is the function for code that knows no HTTP: the gateway calls it with the
services and the verified claims of a facade access token (the principal), and gets the user's current
upstream access token. Nothing here logs or counts a token.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from proxy.errors import InvalidGrant, NoUpstreamToken, UpstreamError, UpstreamUnavailable
from proxy.log import get_logger
from proxy.state import Services
from proxy.upstream import token_set
from proxy.upstream.failures import judged

Json = dict[str, Any]
log = get_logger()
LOCK_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class UpstreamAccessToken:
    """The user's upstream access token and its remaining lifetime (None: the IdP gave none, GitHub)."""

    access_token: str = field(repr=False)
    expires_in: int | None
    token_type: str = "Bearer"


def near_expiry(s: Services, upstream: Json | None) -> bool:
    """True when the upstream access token expires within PROXY_UPSTREAM_REFRESH_SKEW_S and can be
    refreshed. A token without expiry (GitHub's classic tokens) never needs it."""
    if not upstream or not upstream.get("refresh_token") or s.upstream.profile.refresh == "none":
        return False
    expires_at = upstream.get("expires_at")
    return expires_at is not None and expires_at - s.settings.upstream_refresh_skew_s <= time.time()


async def refresh_upstream(s: Services, family: str, upstream: Json, client_id: str, *, step: str) -> Json:
    """Refresh the family's upstream grant and store the answer (a rotated refresh token replaces the
    old one before anyone hears of it); the fresh token set.

    Raises the policy's error: `InvalidGrant` after revoking the family when the upstream grant is gone,
    `UpstreamMisconfigured` / `UpstreamUnavailable` (503) with everything kept otherwise."""
    holder = secrets.token_urlsafe(12)
    lock_ms = int((s.settings.upstream_refresh_timeout_s + 5) * 1000)
    deadline = time.monotonic() + s.settings.upstream_refresh_timeout_s
    while not await s.store.lock_upstream_refresh(family, holder, lock_ms):
        # Someone else refreshes this family now: wait for it, then use what it stored.
        if time.monotonic() > deadline:
            raise UpstreamUnavailable(detail=f"{step}: another upstream refresh of this family did not finish")
        await asyncio.sleep(LOCK_POLL_S)
        current = await s.store.family_grant(family)
        if current is None:
            raise InvalidGrant(detail="family revoked during the upstream refresh")
        if current.upstream and current.upstream.get("access_token") != upstream.get("access_token"):
            return current.upstream
    try:
        current = await s.store.family_grant(family)  # another holder may have refreshed just before
        if current is None:
            raise InvalidGrant(detail="family revoked during the upstream refresh")
        if current.upstream and current.upstream.get("access_token") != upstream.get("access_token"):
            return current.upstream
        try:
            response = await s.upstream.refresh(upstream["refresh_token"], client_id=client_id)
        except UpstreamError as exc:
            judgement = judged(exc, step)
            if judgement.terminal:
                await s.store.revoke_family(family)
                log.warning("family.revoked", reason="upstream_grant_ended", cause=judgement.outcome.cause)
            raise judgement.error from exc
        fresh = token_set(response, previous=upstream)
        if not await s.store.update_upstream(family, fresh):
            raise InvalidGrant(detail="family revoked during the upstream refresh")
        return fresh
    finally:
        await s.store.unlock_upstream_refresh(family, holder)


async def fresh_upstream(s: Services, family: str, *, step: str) -> Json:
    """The family's upstream token set, refreshed first when its access token is near expiry."""
    current = await s.store.family_grant(family)
    if current is None:
        raise InvalidGrant(detail="family revoked")
    upstream = current.upstream or {}
    if near_expiry(s, upstream):
        upstream = await refresh_upstream(s, family, upstream, str(current.grant["client_id"]), step=step)
    return upstream


class HasClaims(Protocol):
    """The resource side's `Principal` (proxy/resource/core.py): a verified token's claims."""

    @property
    def claims(self) -> Mapping[str, Any]: ...


async def upstream_access_token(s: Services, principal: Mapping[str, Any] | HasClaims, *,
                                step: str = "gateway") -> UpstreamAccessToken:
    """The signed-in user's current upstream access token, for the verified facade access token whose
    claims are `principal` (or a `Principal` carrying them; its `sid` names the family). Refreshed
    upstream first when near expiry, under the error policy. `InvalidGrant` when the family is gone,
    `NoUpstreamToken` when it holds no usable upstream token, 503s as the policy says."""
    claims = principal if isinstance(principal, Mapping) else principal.claims
    family = claims.get("sid")
    if not isinstance(family, str) or not family:
        raise InvalidGrant(detail="the access token names no family")
    upstream = await fresh_upstream(s, family, step=step)
    token = upstream.get("access_token")
    if not isinstance(token, str) or not token:
        raise NoUpstreamToken(detail="the family holds no upstream access token")
    expires_at = upstream.get("expires_at")
    if expires_at is None:
        return UpstreamAccessToken(token, None)
    remaining = math.ceil(expires_at - time.time())
    if remaining <= 0:
        raise NoUpstreamToken(detail="the upstream access token expired and cannot be refreshed")
    return UpstreamAccessToken(token, remaining)
