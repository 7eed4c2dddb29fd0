"""grant_type=urn:ietf:params:oauth:grant-type:token-exchange (RFC 8693): a resource server trades the
facade access token it was called with for the signed-in user's current upstream access token.

An MCP server for GitHub or Google must call the IdP's API as the user; handing the IdP token to the MCP
client instead is the token passthrough the MCP specification forbids. Only an authenticated resource
server whose entry says `token_exchange = true` may ask (RFC 8693 §2.1: the client of this grant is the
resource server), and only for a subject token whose `aud` is one of its own resources. The upstream
token is refreshed first when near expiry, under the upstream error policy (upstream_access.py).

    subject_token_type   urn:ietf:params:oauth:token-type:access_token (the only one accepted)
    issued_token_type    urn:ietf:params:oauth:token-type:access_token
    token_type           Bearer: the upstream token is an access token usable at the IdP's API
                         (RFC 8693 §2.2.1 reserves N_A for tokens that are not)
    expires_in           its remaining lifetime; absent when the IdP gave none (GitHub's classic tokens)

Errors (RFC 8693 §2.2.2, RFC 6749 §5.2): an expired, revoked or foreign subject token is invalid_grant;
a `resource`/`audience` it does not own is invalid_target; an unsupported token type or an actor token is
invalid_request; a resource server without the right is unauthorized_client. Never logged or counted:
either token.
"""

from __future__ import annotations

from typing import Any

from proxy import audit
from proxy.clients.resource_servers import ResourceServer
from proxy.errors import InvalidGrant, InvalidRequest, InvalidTarget, OAuthError, UnauthorizedClient
from proxy.log import get_logger
from proxy.metrics import UPSTREAM_TOKEN_EXCHANGES
from proxy.resources import normalise
from proxy.state import Services
from proxy.token.bearer import live_access_token
from proxy.token.grants.upstream_access import upstream_access_token

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
log = get_logger()


def _checked_form(caller: ResourceServer, form: dict[str, str]) -> str:
    """The subject token, once the request is one this server answers."""
    if not caller.token_exchange:
        raise UnauthorizedClient("This resource server may not use token exchange.")
    subject_token = form.get("subject_token")
    if not subject_token:
        raise InvalidRequest("The subject_token parameter is missing.")
    if form.get("subject_token_type") != ACCESS_TOKEN_TYPE:
        raise InvalidRequest(f"subject_token_type must be {ACCESS_TOKEN_TYPE}.")
    requested = form.get("requested_token_type")
    if requested is not None and requested != ACCESS_TOKEN_TYPE:
        raise InvalidRequest(f"The only requested_token_type issued is {ACCESS_TOKEN_TYPE}.")
    if form.get("actor_token") or form.get("actor_token_type"):
        raise InvalidRequest("Delegation (actor_token) is not supported.")
    for name in ("resource", "audience"):
        value = form.get(name)
        if value is not None and not caller.owns(normalise(value)):
            raise InvalidTarget(f"The {name} is not one of this resource server's resources.")
    return subject_token


async def handle(s: Services, caller: ResourceServer, form: dict[str, str]) -> dict[str, Any]:
    try:
        body = await _exchange(s, caller, form)
    except OAuthError as exc:
        UPSTREAM_TOKEN_EXCHANGES.labels(caller.id, exc.error).inc()
        raise
    UPSTREAM_TOKEN_EXCHANGES.labels(caller.id, "issued").inc()
    return body


async def _exchange(s: Services, caller: ResourceServer, form: dict[str, str]) -> dict[str, Any]:
    subject_token = _checked_form(caller, form)
    claims = await live_access_token(s, subject_token)
    if claims is None:
        raise InvalidGrant("The subject token is invalid, expired or revoked.")
    if not caller.owns(claims.get("aud")):
        # Not a token this resource server was called with: never say whose it is.
        raise InvalidGrant("The subject token is invalid, expired or revoked.",
                           detail=f"{caller.id} presented a token for another resource")
    for name in ("resource", "audience"):
        value = form.get(name)
        if value is not None and normalise(value) != normalise(str(claims.get("aud"))):
            raise InvalidTarget(f"The {name} differs from the subject token's audience.")
    token = await upstream_access_token(s, claims, step="token_exchange")
    log.info("token.exchanged", resource_server=caller.id, client_id=claims.get("client_id"), sub=claims.get("sub"))
    audit.event("audit.token", grant_type="urn:ietf:params:oauth:grant-type:token-exchange",
                client_id=claims.get("client_id"), sub=claims.get("sub"), resource=claims.get("aud"),
                resource_server=caller.id)
    body: dict[str, Any] = {"access_token": token.access_token, "issued_token_type": ACCESS_TOKEN_TYPE,
                            "token_type": "Bearer"}
    if token.expires_in is not None:
        body["expires_in"] = token.expires_in
    return body
