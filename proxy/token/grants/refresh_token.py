"""grant_type=refresh_token (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).

Racers of one credential (concurrent Claude Code processes) get the same successor while it is
unused and the grace window lasts; any other replay of a token the facade issued revokes the family
and its upstream grant. A token it never issued (its MAC does not verify, see sealing.py) is
invalid_grant and changes nothing, even when it names a live family. When the upstream access token
is near expiry the upstream grant is refreshed first, its rotated refresh token stored before the
client hears anything (oidc-provider revokes a whole grant on reuse).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from proxy import audit, scopes
from proxy.errors import InvalidGrant, InvalidRequest, InvalidScope, InvalidTarget, StoreUnavailable
from proxy.log import get_logger
from proxy.metrics import REFRESH_RESUMED, REFRESH_REUSE
from proxy.resources import normalise
from proxy.state import Services
from proxy.store.store import family_of
from proxy.token.grants.upstream_access import fresh_upstream, near_expiry, refresh_upstream
from proxy.token.mint import token_response
from proxy.token.sealing import ORIGIN, refresh_tokens, seal, unseal

GRANT_TYPE = "refresh_token"
log = get_logger()


def _narrowed(requested: str | None, granted: str) -> str:
    """RFC 6749 §6: a refresh may narrow the scope, never widen it."""
    if requested is None:
        return granted
    words = scopes.parse(requested)
    granted_words = granted.split()
    if not words or any(word not in granted_words for word in words):
        raise InvalidScope("A refresh may only narrow the granted scope.")
    return " ".join(words)


def _upstream_with_client(s: Services) -> bool:
    """PROXY_UPSTREAM_REFRESH=with-client, or a client that holds the upstream's own access token
    (PROXY_ACCESS_TOKEN_MODE=upstream), which must never be handed an expired one."""
    return s.settings.upstream_refresh == "with-client" or s.settings.access_token_mode == "upstream"


async def _refresh_upstream(s: Services, family: str, new_token: str, outcome_undo: tuple[str, ...],
                            upstream: dict[str, Any], client_id: str) -> dict[str, Any]:
    """The upstream part of a client's refresh, under the upstream error policy: a terminal failure has
    revoked the family (invalid_grant); any other puts the rotation back, so the presented token still
    works (unless a racer already holds its successor: then that successor stands, see UNDO_ROTATION)."""
    try:
        return await refresh_upstream(s, family, upstream, client_id, step="upstream_refresh")
    except InvalidGrant:
        raise  # terminal: the family is gone, nothing to put back
    except BaseException:
        # Any other end (an outage, a bug, a cancelled request) must leave the presented token current:
        # the client never saw the successor, and its retry after the grace window would be "reuse".
        with contextlib.suppress(StoreUnavailable):
            await asyncio.shield(s.store.undo_rotation(new_token, outcome_undo))
        raise


async def handle(s: Services, client_id: str, form: dict[str, str]) -> dict[str, Any]:
    presented = form.get("refresh_token")
    if not presented:
        raise InvalidRequest("The refresh_token parameter is missing.")
    family = family_of(presented)
    if family is None:
        raise InvalidGrant(detail="refresh token of a foreign shape")
    minter = refresh_tokens(s.keyset)
    lineage = minter.lineage(presented)
    issued = lineage is not None or minter.issued(presented)
    position = lineage or ORIGIN
    new_token, secret = minter.mint(family, position.successor())
    resumed: tuple[str, str] | None = None
    if lineage is not None:  # the successor to hand out if the store lost this token's rotation
        resumed_token, resumed_secret = minter.mint(family, lineage.resumed())
        resumed = (resumed_token, seal(resumed_secret, presented))
    outcome = await s.store.rotate_refresh(presented, new_token, seal(secret, presented), client_id,
                                           issued=issued, resumed=resumed,
                                           lineage=(lineage.generation, lineage.branch) if lineage else None)
    if outcome.status == "reuse":
        log.warning("refresh.reuse_detected", client_id=client_id)
        audit.event("audit.reuse_detected", client_id=client_id, what="refresh_token", family=family)
        REFRESH_REUSE.inc()
        await s.upstream.revoke_quietly(outcome.family.upstream if outcome.family else None, client_id)
        raise InvalidGrant(detail="refresh token reuse; family revoked")
    if outcome.family is None:
        raise InvalidGrant(detail=f"refresh token {outcome.status}")
    grant, upstream = outcome.family.grant, outcome.family.upstream
    if outcome.successor is not None:
        new_token = outcome.successor
    if outcome.status == "resumed":
        log.warning("refresh.resumed", client_id=client_id)
        REFRESH_RESUMED.inc()
    try:
        scope = _checked_request(form, grant)
    except (InvalidScope, InvalidTarget):
        if outcome.undo is not None:  # bad input changes nothing: the presented token stays current
            await s.store.undo_rotation(new_token, outcome.undo)
        raise
    if outcome.status == "grace":
        assert outcome.sealed is not None
        new_token = unseal(outcome.sealed, presented, family)
        if s.settings.access_token_mode == "upstream" and near_expiry(s, upstream):
            # The racer holds the IdP's own token (PROXY_ACCESS_TOKEN_MODE=upstream): never a stale one.
            # Refresh it, or take what the rotation's own upstream refresh stored (the family's lock).
            upstream = await fresh_upstream(s, family, step="upstream_refresh")
        log.info("refresh.grace_replay", client_id=client_id)
    else:
        assert outcome.undo is not None
        if _upstream_with_client(s) and near_expiry(s, upstream):
            assert upstream is not None
            upstream = await _refresh_upstream(s, family, new_token, outcome.undo, upstream, client_id)
        log.info("refresh.rotated", client_id=client_id)
    audit.event("audit.refresh", client_id=client_id, sub=grant.get("sub"), scope=scope,
                resource=grant.get("resource"), family=family, grace=outcome.status == "grace")
    return token_response(s, grant, family=family, refresh_token=new_token, scope=scope, upstream=upstream)


def _checked_request(form: dict[str, str], grant: dict[str, Any]) -> str:
    """The scope to grant; `resource`, when sent, must be the authorized one (RFC 8707 §2.2)."""
    resource = form.get("resource")
    if resource is not None and normalise(resource) != normalise(grant["resource"]):
        raise InvalidTarget("The resource differs from the one authorized.")
    return _narrowed(form.get("scope"), grant["scope"])
