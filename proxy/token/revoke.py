"""POST /revoke (RFC 7009): refresh tokens revoke their family (and the upstream grant), access
tokens are denied until they expire. Always 200 for a well-formed request, known token or not."""

from __future__ import annotations

import time

from aiohttp import web

from proxy.errors import InvalidRequest
from proxy.log import get_logger
from proxy.state import services
from proxy.store.store import digest, family_of
from proxy.token.bearer import live_access_token
from proxy.token.clientauth import client_id_of
from proxy.web.forms import form
from proxy.web.render import NO_STORE

log = get_logger()


async def revoke(request: web.Request) -> web.Response:
    s = services(request)
    params = await form(request)
    client_id = client_id_of(request, params)
    token = params.get("token")
    if not token:
        raise InvalidRequest("The token parameter is missing.")
    claims = await live_access_token(s, token)
    if claims is not None:
        if claims.get("client_id") == client_id:
            await s.store.revoke_access_token(str(claims["jti"]), int(claims["exp"]) - int(time.time()))
            log.info("access_token.revoked", client_id=client_id)
        return web.Response(status=200, headers=NO_STORE)
    family = family_of(token)
    if family is not None and await s.store.refresh_token_current(family, digest(token), client_id):
        revoked = await s.store.revoke_family(family)
        log.info("family.revoked", reason="revocation", client_id=client_id)
        await s.upstream.revoke_quietly(revoked.upstream if revoked else None, client_id)
    return web.Response(status=200, headers=NO_STORE)
