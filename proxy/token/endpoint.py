"""POST /token (RFC 6749 §3.2): identify the client, dispatch on grant_type, answer no-store JSON.

An unregistered client is 401 invalid_client before any grant is looked at (RFC 6749 §5.2), so a client
whose registration expired learns to register again. A refresh family dies with its client: a refresh
whose current token shows a family of a client that is gone revokes that family (and its upstream
grant) on the way to the same answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from proxy.clients.resource_servers import claimed_id
from proxy.errors import InvalidClient, InvalidRequest, UnauthorizedClient, UnsupportedGrantType
from proxy.state import Services, services
from proxy.token.clientauth import authenticate_client, unknown_client
from proxy.token.families import revoke_held_family
from proxy.token.grants import authorization_code, client_credentials, jwt_bearer, refresh_token, token_exchange
from proxy.web import ratelimit
from proxy.web.forms import form
from proxy.web.render import NO_STORE, json_response
from proxy.web.upstream_client import acts_upstream_for_client

Grant = Callable[[Services, str, dict[str, str]], Awaitable[dict[str, Any]]]
GRANTS: dict[str, Grant] = {
    authorization_code.GRANT_TYPE: authorization_code.handle,
    refresh_token.GRANT_TYPE: refresh_token.handle,
    client_credentials.GRANT_TYPE: client_credentials.handle,  # pre-registered confidential clients only
    jwt_bearer.GRANT_TYPE: jwt_bearer.handle,  # ID-JAG, while PROXY_ENTERPRISE_IDPS_FILE lists an IdP
}


def _offered(s: Services, grant_type: str) -> bool:
    """Grants that exist only in some deployments answer unsupported_grant_type elsewhere."""
    if grant_type == client_credentials.GRANT_TYPE:
        return s.clients.offers_client_credentials
    if grant_type == jwt_bearer.GRANT_TYPE:
        return s.enterprise.idps.configured
    return True


@acts_upstream_for_client
async def token(request: web.Request) -> web.Response:
    s = services(request)
    params = await form(request)
    grant_type = params.get("grant_type")
    if not grant_type:
        raise InvalidRequest("The grant_type parameter is missing.")
    handle = GRANTS.get(grant_type)
    if handle is None or not _offered(s, grant_type):
        if grant_type != token_exchange.GRANT_TYPE or not s.resource_servers.offers_token_exchange:
            raise UnsupportedGrantType()
    if grant_type == token_exchange.GRANT_TYPE:  # RFC 8693: resource servers only, never MCP clients
        return await _token_exchange(request, s, params)
    # Counted before the (slow) secret or assertion check; a confidential client proves its secret or key.
    url_client = jwt_bearer.url_client(params) if grant_type == jwt_bearer.GRANT_TYPE else None
    if url_client is not None:  # a CIMD client may present an ID-JAG without ever visiting /authorize
        await ratelimit.admit(request, "token", url_client)
        await jwt_bearer.resolve_document(s, url_client)  # so its document's auth method applies below
        client_id = await authenticate_client(request, s, params)
    else:
        client_id = await authenticate_client(request, s, params, "token")
    if not await s.clients.known_at_token(client_id):  # also renews a DCR registration's lifetime
        if grant_type == refresh_token.GRANT_TYPE and params.get("refresh_token"):
            await revoke_held_family(s, params["refresh_token"], client_id, reason="client_gone")
        raise unknown_client(request)
    preregistered = s.clients.preregistered(client_id)
    if preregistered is not None and grant_type not in preregistered.grant_types:
        raise UnauthorizedClient("This client may not use this grant type.")
    body = await handle(s, client_id, params)
    return json_response(body, headers=NO_STORE)


async def _token_exchange(request: web.Request, s: Services, params: dict[str, str]) -> web.Response:
    """The caller authenticates as a resource server (a registered MCP client cannot: invalid_client)."""
    header = request.headers.get("Authorization", "")
    claimed = claimed_id(header, params)
    await ratelimit.admit(request, "token", claimed)  # counted before the (slow) secret check
    try:
        caller = await s.resource_servers.authenticate(header, params)
    except InvalidClient:
        if claimed:
            await ratelimit.client_credential_failed(request, claimed)
        raise
    body = await token_exchange.handle(s, caller, params)
    return json_response(body, headers=NO_STORE)
