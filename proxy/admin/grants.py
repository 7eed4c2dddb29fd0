"""Listing and ending users' grants (refresh families), for `oauth-facade grants` and the admin API.

Ending a grant is exactly what a revocation does (proxy/token/families.py): the family is deleted, so
its refresh token is dead and every access token it minted is refused at once by the gateway,
forward-auth, /introspect and /userinfo (they ask `Store.access_token_live`, which needs the family);
the upstream grant it holds is revoked at the IdP. Ending a subject's or a client's grants also ends
what the user's browsers remember: consent approvals given before are no longer honoured (see
`GrantIndex.end_approvals` and proxy/callback/endpoint.py), and a code issued but not yet redeemed
opens nothing. Every operation is idempotent: ending what is already gone ends nothing and succeeds.

No HTTP here: the CLI and proxy/ops/admin.py call these with the app's services.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from proxy import audit
from proxy.clients.directory import ClientDirectory
from proxy.log import get_logger
from proxy.settings import Settings
from proxy.store import Store
from proxy.store.grants import Grant
from proxy.upstream import Upstream

log = get_logger()


@dataclass(frozen=True, slots=True)
class Selector:
    """Exactly one of a family id, a subject or a client id."""

    family: str | None = None
    sub: str | None = None
    client_id: str | None = None

    def __post_init__(self) -> None:
        if sum(value is not None and value != "" for value in (self.family, self.sub, self.client_id)) != 1:
            raise ValueError("name exactly one of family, sub or client")

    def describe(self) -> dict[str, str]:
        return {name: value for name, value in (("family", self.family), ("sub", self.sub),
                                                ("client_id", self.client_id)) if value}


def approvals_lifetime(settings: Settings) -> int:
    """How long an ending of approvals is remembered: as long as an approval, a sign-in and a code live."""
    return settings.consent_ttl_s + settings.transaction_ttl_s + settings.code_ttl_s


async def client_facts(store: Store, directory: ClientDirectory, client_id: str) -> tuple[str, str]:
    """(name, kind) of a client: `cimd` (its id is its metadata document URL), `pre-registered`,
    `machine` (pre-registered for client_credentials only) or `dcr`. Read without renewing anything."""
    kind = directory.kind(client_id)
    if kind == "cimd":
        return client_id, kind
    pre = directory.preregistered(client_id)
    if pre is not None:
        return pre.name, kind
    raw = await store.redis.get(store.key("client", client_id))
    name = str(json.loads(raw).get("client_name") or "") if raw else ""
    return name, "dcr"


async def list_grants(store: Store, directory: ClientDirectory, *, sub: str | None = None,
                      client_id: str | None = None) -> list[dict[str, Any]]:
    """Every live family of `sub` and/or `client_id` (all when neither), with its client's name and kind."""
    grants = await store.grants.families(sub=sub, client_id=client_id)
    facts: dict[str, tuple[str, str]] = {}
    rows = []
    for grant in grants:
        if grant.client_id not in facts:
            facts[grant.client_id] = await client_facts(store, directory, grant.client_id)
        name, kind = facts[grant.client_id]
        rows.append({**grant.record(), "client_name": name, "client_kind": kind})
    return rows


async def end_grants(store: Store, upstream: Upstream, selector: Selector, *, by: str,
                     approvals_lifetime_s: int) -> list[dict[str, Any]]:
    """End the selected families as a revocation does; return what was ended (nothing, a second time)."""
    if selector.family is not None:
        candidates = [selector.family]
    else:
        candidates = await store.grants.members(sub=selector.sub, client_id=selector.client_id)
        await store.grants.end_approvals(sub=selector.sub, client_id=selector.client_id,
                                         lifetime_s=approvals_lifetime_s)
    ended: list[dict[str, Any]] = []
    for family in candidates:
        revoked = await store.revoke_family(family)
        grant = revoked.grant if revoked is not None else {}
        await store.grants.forget(family, sub=grant.get("sub") or selector.sub,
                                  client_id=grant.get("client_id") or selector.client_id)
        if revoked is None:
            continue
        client_id = str(grant.get("client_id", ""))
        await upstream.revoke_quietly(revoked.upstream, client_id)
        log.info("family.revoked", reason="operator", client_id=client_id)
        ended.append({"family": family, "sub": grant.get("sub"), "client_id": client_id,
                      "upstream_grant": bool(revoked.upstream and revoked.upstream.get("refresh_token"))})
    audit.event("audit.admin", by=by, action="grants.revoke", selector=selector.describe(),
                families=[row["family"] for row in ended], subjects=sorted({str(row["sub"]) for row in ended}))
    return ended


__all__ = ["Grant", "Selector", "approvals_lifetime", "client_facts", "end_grants", "list_grants"]
