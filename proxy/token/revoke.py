"""POST /revoke (RFC 7009): refresh tokens revoke their family (and the upstream grant), access
tokens are denied until they expire. Always 200 for a well-formed request from a registered client,
known token or not; an unregistered client is 401 invalid_client (RFC 7009 §2.2.1, RFC 6749 §5.2), and
a family its current refresh token shows to belong to that gone client is revoked all the same."""

from __future__ import annotations

import time

from aiohttp import web

from proxy import audit
from proxy.errors import InvalidRequest
from proxy.log import get_logger
from proxy.state import services
from proxy.token.bearer import live_access_token
from proxy.token.clientauth import authenticate_client, unknown_client
from proxy.token.families import revoke_held_family
from proxy.web.forms import form
from proxy.web.render import NO_STORE
from proxy.web.upstream_client import acts_upstream_for_client

log = get_logger()


@acts_upstream_for_client
async def revoke(request: web.Request) -> web.Response:
    s = services(request)
    params = await form(request)
    client_id = await authenticate_client(request, s, params)
    token = params.get("token")
    if not token:
        raise InvalidRequest("The token parameter is missing.")
    if not await s.clients.known_at_token(client_id):
        await revoke_held_family(s, token, client_id, reason="client_gone")
        raise unknown_client(request)
    claims = await live_access_token(s, token)
    if claims is not None:
        if claims.get("client_id") == client_id:
            await s.store.revoke_access_token(str(claims["jti"]), int(claims["exp"]) - int(time.time()))
            log.info("access_token.revoked", client_id=client_id)
            audit.event("audit.revoke", client_id=client_id, sub=claims.get("sub"), token_type="access_token")
        return web.Response(status=200, headers=NO_STORE)
    await revoke_held_family(s, token, client_id, reason="revocation")
    return web.Response(status=200, headers=NO_STORE)
