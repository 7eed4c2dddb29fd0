"""grant_type=authorization_code (RFC 6749 §4.1.3, RFC 7636 §4.6, RFC 8707 §2.2).

One atomic step checks the code's client, redirect_uri and PKCE challenge and consumes it, opening
the refresh family; a wrong verifier changes nothing, a second redemption revokes the family.
"""

from __future__ import annotations

from typing import Any

from proxy import audit, pkce
from proxy.errors import InvalidGrant, InvalidRequest, InvalidTarget
from proxy.log import get_logger
from proxy.metrics import FLOWS_COMPLETED
from proxy.resources import normalise
from proxy.state import Services
from proxy.store.store import digest, family_of
from proxy.token.mint import token_response
from proxy.token.sealing import refresh_tokens

GRANT_TYPE = "authorization_code"
log = get_logger()


async def handle(s: Services, client_id: str, form: dict[str, str]) -> dict[str, Any]:
    code = form.get("code")
    verifier = form.get("code_verifier")
    if not code:
        raise InvalidRequest("The code parameter is missing.")
    if not verifier:
        raise InvalidRequest("PKCE is required: the code_verifier parameter is missing.")
    if not pkce.VERIFIER.match(verifier):
        raise InvalidRequest("The code_verifier does not match RFC 7636 §4.1 (43-128 unreserved characters).")
    family = family_of(code)
    if family is None:
        raise InvalidGrant(detail="code of a foreign shape")
    refresh_token, _ = refresh_tokens(s.keyset).mint(family)
    redeemed = await s.store.redeem_code(code, client_id=client_id, redirect_uri=form.get("redirect_uri", ""),
                                         challenge=pkce.s256(verifier), refresh_hash=digest(refresh_token))
    if redeemed.status == "reused":
        log.warning("code.reused", client_id=client_id)
        audit.event("audit.reuse_detected", client_id=client_id, what="authorization_code")
        await s.upstream.revoke_quietly(redeemed.upstream, client_id)  # the upstream grant goes with it
        raise InvalidGrant(detail="authorization code replayed; its family is revoked")
    if redeemed.status != "ok" or redeemed.grant is None:
        raise InvalidGrant(detail=f"code {redeemed.status} {redeemed.mismatch or ''}".strip())
    grant = redeemed.grant
    sent_resource = form.get("resource")
    ended = await s.store.grants.ended_before_redemption(family)  # an operator ended it meanwhile
    if ended or (sent_resource is not None and normalise(sent_resource) != normalise(grant["resource"])):
        # Consumed already, so the family must go too: nothing of this code survives a bad request.
        revoked = await s.store.revoke_family(family)
        await s.upstream.revoke_quietly(revoked.upstream if revoked else None, client_id)
        if ended:
            raise InvalidGrant(detail="the grant was ended by an operator before the code was redeemed")
        raise InvalidTarget("The resource differs from the one authorized.")
    await s.store.activate_client(client_id)  # used for a sign-in: from now on kept PROXY_CLIENT_TTL_S
    log.info("token.issued", grant_type=GRANT_TYPE, client_id=client_id)
    audit.event("audit.token", grant_type=GRANT_TYPE, client_id=client_id, sub=grant.get("sub"),
                scope=grant.get("scope"), resource=grant.get("resource"), family=family)
    FLOWS_COMPLETED.inc()
    return token_response(s, grant, family=family, refresh_token=refresh_token, nonce=grant.get("nonce"),
                          upstream=redeemed.upstream)
