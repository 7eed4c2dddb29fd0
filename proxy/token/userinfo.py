"""GET/POST /userinfo (OIDC Core §5.3) with the facade's access token as Bearer (RFC 6750)."""

from __future__ import annotations

from aiohttp import web

from proxy.errors import InvalidToken, UpstreamError
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
    family = await s.store.family_grant(str(claims["sid"]))
    if family is None:
        raise InvalidToken()
    info = {**family.grant.get("claims", {}), "sub": family.grant["sub"]}
    upstream = family.upstream or {}
    fresh = s.settings.upstream_fresh_userinfo or s.upstream.profile.fresh_userinfo
    if fresh and upstream.get("access_token"):
        try:
            fresh = await s.upstream.userinfo(upstream["access_token"])
            info.update({k: fresh[k] for k in s.upstream.profile.claims if k in fresh})
        except UpstreamError as exc:
            log.warning("upstream.userinfo_failed", detail=exc.detail)
    return json_response(info, headers=NO_STORE)
