"""POST /introspect (RFC 7662) for authenticated resource servers (PROXY_RESOURCE_SERVERS_FILE, or the
legacy PROXY_INTROSPECTION_SECRET).

A named resource server learns only about tokens for the resources it owns: any other token, live or
not, is `{"active": false}` (RFC 7662 §2.2 lets the server answer inactive for a token the caller may not
see), so a resource server cannot probe another's tokens.
"""

from __future__ import annotations

from aiohttp import web

from proxy.errors import InvalidClient, InvalidRequest
from proxy.state import services
from proxy.store.store import digest, family_of
from proxy.token.bearer import live_access_token
from proxy.web.forms import form
from proxy.web.render import NO_STORE, json_response

INACTIVE = {"active": False}


async def introspect(request: web.Request) -> web.Response:
    s = services(request)
    if not s.resource_servers.offers_introspection:
        raise InvalidClient("Introspection is not enabled (PROXY_RESOURCE_SERVERS_FILE or PROXY_INTROSPECTION_SECRET).",
                            challenge=False)
    params = await form(request)
    caller = await s.resource_servers.authenticate(request.headers.get("Authorization", ""), params, bearer=True)
    token = params.get("token")
    if not token:
        raise InvalidRequest("The token parameter is missing.")
    claims = await live_access_token(s, token)
    if claims is not None:
        if not caller.owns(claims.get("aud")):
            return json_response(INACTIVE, headers=NO_STORE)
        body = {"active": True, "token_type": "Bearer",
                **{k: claims[k] for k in ("scope", "client_id", "sub", "exp", "iat", "iss", "aud", "jti")
                   if k in claims}}
        return json_response(body, headers=NO_STORE)
    family = family_of(token)
    if family is not None:
        grant = await s.store.active_refresh_token(family, digest(token))  # none past its absolute expiry
        if grant is not None and caller.owns(grant.grant.get("resource")):
            body = {"active": True, "token_type": "refresh_token", "scope": grant.grant["scope"],
                    "client_id": grant.grant["client_id"], "sub": grant.grant["sub"], "iss": s.settings.issuer}
            return json_response(body, headers=NO_STORE)
    return json_response(INACTIVE, headers=NO_STORE)
