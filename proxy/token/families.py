"""Ending a refresh family on its holder's word: revocation (RFC 7009) and a client that is gone.

A family is revoked only by someone who shows its current refresh token, bound to the same client:
the family id alone is public and proves nothing. Its upstream grant is revoked with it.
"""

from __future__ import annotations

from proxy import audit
from proxy.log import get_logger
from proxy.state import Services
from proxy.store.store import digest, family_of
from proxy.token.sealing import refresh_tokens

log = get_logger()


async def revoke_held_family(s: Services, token: str, client_id: str, *, reason: str) -> bool:
    """Revoke the family whose current refresh token is `token` (issued to `client_id`); False if none."""
    family = family_of(token)
    if family is None:
        return False
    lineage = refresh_tokens(s.keyset).lineage(token)  # a successor a failover lost is still the holder's
    position = (lineage.generation, lineage.branch) if lineage else None
    if not await s.store.refresh_token_current(family, digest(token), client_id, position):
        return False
    revoked = await s.store.revoke_family(family)
    log.info("family.revoked", reason=reason, client_id=client_id)
    audit.event("audit.revoke", client_id=client_id, sub=revoked.grant.get("sub") if revoked else None,
                token_type="refresh_token", family=family, reason=reason)
    await s.upstream.revoke_quietly(revoked.upstream if revoked else None, client_id)
    return True
