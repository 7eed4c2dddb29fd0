"""POST /introspect (RFC 7662) for resource servers holding PROXY_INTROSPECTION_SECRET."""

from __future__ import annotations

import hmac

from aiohttp import web

from proxy.clients.basic import parse_basic_header
from proxy.errors import InvalidClient, InvalidRequest
from proxy.state import Services, services
from proxy.store.store import digest, family_of
from proxy.token.bearer import live_access_token
from proxy.web.forms import form
from proxy.web.render import NO_STORE, json_response


def _authorized(request: web.Request, s: Services) -> None:
    secret = s.settings.introspection_secret
    header = request.headers.get("Authorization", "")
    if secret is None:
        raise InvalidClient("Introspection is not enabled (set PROXY_INTROSPECTION_SECRET).")
    expected = secret.get_secret_value()
    if header[:7].lower() == "bearer ":
        presented = header[7:].strip()
    elif header[:6].lower() == "basic ":
        presented = parse_basic_header(header)[1]
    else:
        raise InvalidClient("Authenticate with the introspection credential (Basic or Bearer).")
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise InvalidClient()


async def introspect(request: web.Request) -> web.Response:
    s = services(request)
    _authorized(request, s)
    params = await form(request)
    token = params.get("token")
    if not token:
        raise InvalidRequest("The token parameter is missing.")
    claims = await live_access_token(s, token)
    if claims is not None:
        body = {"active": True, "token_type": "Bearer",
                **{k: claims[k] for k in ("scope", "client_id", "sub", "exp", "iat", "iss", "aud", "jti")
                   if k in claims}}
        return json_response(body, headers=NO_STORE)
    family = family_of(token)
    if family is not None:
        grant = await s.store.active_refresh_token(family, digest(token))  # none past its absolute expiry
        if grant is not None:
            body = {"active": True, "token_type": "refresh_token", "scope": grant.grant["scope"],
                    "client_id": grant.grant["client_id"], "sub": grant.grant["sub"], "iss": s.settings.issuer}
            return json_response(body, headers=NO_STORE)
    return json_response({"active": False}, headers=NO_STORE)
