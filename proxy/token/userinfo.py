"""GET/POST /userinfo (OIDC Core §5.3) with the facade's access token as Bearer (RFC 6750).

It needs `openid` in the token's scope (OIDC Core §5.3: an OpenID Connect request) and answers only
the claims that scope releases (OIDC Core §5.4, see `release`); a token without `openid` gets 403
`insufficient_scope` with its Bearer challenge (RFC 6750 §3.1).
"""

from __future__ import annotations

from aiohttp import web

from proxy.claims import OPENID, identity_claims
from proxy.errors import InsufficientScope, InvalidToken, UpstreamError
from proxy.log import get_logger
from proxy.state import services
from proxy.token.bearer import live_access_token
from proxy.web.render import NO_STORE, json_response

log = get_logger()


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
        try:
            fresh = await s.upstream.userinfo(upstream["access_token"])
            known.update({k: fresh[k] for k in s.upstream.profile.claims if k in fresh})
        except UpstreamError as exc:
            log.warning("upstream.userinfo_failed", detail=exc.detail)
    info = {**identity_claims(known, scope), "sub": family.grant["sub"]}
    return json_response(info, headers=NO_STORE)
