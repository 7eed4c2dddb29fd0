"""GET/POST /userinfo (OIDC Core §5.3) with the facade's access token as Bearer (RFC 6750).

It needs `openid` in the token's scope (OIDC Core §5.3: an OpenID Connect request) and answers only
the claims that scope releases (OIDC Core §5.4, see `release`); a token without `openid` gets 403
`insufficient_scope` with its Bearer challenge (RFC 6750 §3.1).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from proxy.claims import OPENID, identity_claims
from proxy.errors import InsufficientScope, InvalidGrant, InvalidToken, NoUpstreamToken, UpstreamError
from proxy.log import get_logger
from proxy.state import Services, services
from proxy.token.bearer import live_access_token
from proxy.token.grants.upstream_access import upstream_access_token
from proxy.upstream.failures import judged
from proxy.web.render import NO_STORE, json_response
from proxy.web.upstream_client import acts_upstream_for_client

log = get_logger()


async def _fresh_claims(s: Services, principal: dict[str, Any]) -> dict[str, Any]:
    """The upstream's current claims, under the upstream error policy: the upstream token is refreshed
    first when near expiry (whatever PROXY_UPSTREAM_REFRESH says: this is "something needs it"); a
    terminal failure ends the family and the token with it (401 invalid_token); an operator or transient
    failure is 503 temporarily_unavailable, never stale claims passed off as fresh."""
    family = str(principal["sid"])
    try:
        token = await upstream_access_token(s, principal, step="userinfo")
        answer = await s.upstream.userinfo(token.access_token)
    except NoUpstreamToken as exc:  # nothing to ask the upstream with: the sign-in's claims stand
        log.info("upstream.userinfo_skipped", detail=exc.detail)
        return {}
    except InvalidGrant as exc:
        raise InvalidToken() from exc
    except UpstreamError as exc:
        judgement = judged(exc, "userinfo")
        if judgement.terminal:
            await s.store.revoke_family(family)
            log.warning("family.revoked", reason="upstream_grant_ended", cause=judgement.outcome.cause)
            raise InvalidToken() from exc
        raise judgement.error from exc
    return {k: answer[k] for k in s.upstream.profile.claims if k in answer}


@acts_upstream_for_client
async def userinfo(request: web.Request) -> web.Response:
    s = services(request)
    header = request.headers.get("Authorization", "")
    if header[:7].lower() != "bearer ":
        raise InvalidToken("A Bearer access token is required.")
    claims = await live_access_token(s, header[7:].strip())
    if claims is None or not claims.get("sid"):
        raise InvalidToken()
    scope = str(claims.get("scope", ""))
    if OPENID not in scope.split():
        raise InsufficientScope(OPENID, "/userinfo needs an access token granted the openid scope.")
    family = await s.store.family_grant(str(claims["sid"]))
    if family is None:
        raise InvalidToken()
    known = dict(family.grant.get("claims", {}))
    upstream = family.upstream or {}
    fresh = s.settings.upstream_fresh_userinfo or s.upstream.profile.fresh_userinfo
    if fresh and upstream.get("access_token"):
        known.update(await _fresh_claims(s, claims))
    info = {**identity_claims(known, scope), "sub": family.grant["sub"]}
    return json_response(info, headers=NO_STORE)
