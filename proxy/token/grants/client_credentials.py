"""grant_type=client_credentials (RFC 6749 §4.4; MCP's client-credentials extension, SEP-1046).

Only for pre-registered confidential clients that list the grant (the endpoint has checked the
secret, or the private_key_jwt assertion). The access token's `sub` is the client itself, as
`client:<client_id>` (never a user's), its audience one configured resource the client may use (RFC 8707), and
there is no refresh token (§4.4.3) and no id_token.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from proxy import audit, scopes
from proxy.access_policy import token_attributes
from proxy.claims import machine_subject
from proxy.errors import InvalidScope, InvalidTarget, UnauthorizedClient
from proxy.log import get_logger
from proxy.resources import normalise
from proxy.state import Services
from proxy.token.mint import access_token_ttl_s

GRANT_TYPE = "client_credentials"
USER_SCOPES = frozenset({"openid", "offline_access", "profile", "email"})  # mean nothing without a user
log = get_logger()


def _resource(s: Services, sent: str | None, allowed: tuple[str, ...]) -> str:
    if sent is None:
        return allowed[0]
    canonical = s.resources.get(normalise(sent))
    if canonical is None or canonical not in allowed:
        raise InvalidTarget("The resource is not one this client may use.")
    return canonical


async def handle(s: Services, client_id: str, form: dict[str, str]) -> dict[str, Any]:
    client = s.clients.preregistered(client_id)
    if client is None or not client.confidential or GRANT_TYPE not in client.grant_types:
        raise UnauthorizedClient("This client may not use the client_credentials grant.")
    allowed_resources = client.resources or tuple(s.resources.values())
    resource = _resource(s, form.get("resource"), allowed_resources)
    offered = tuple(word for word in (client.scopes or s.scopes) if word not in USER_SCOPES)
    # Scopes that mean nothing without a user are left out, not refused: the MCP SDKs' client-credentials
    # providers ask for the resource metadata's scopes_supported (`openid offline_access`). RFC 6749 §3.3
    # lets the server ignore part of the request; the response's `scope` says what was granted.
    requested = [word for word in scopes.parse(form.get("scope")) if word not in USER_SCOPES]
    if any(word not in offered for word in requested):
        raise InvalidScope("The client may not request this scope.")
    scope = " ".join(requested or offered)
    now = int(time.time())
    ttl = access_token_ttl_s(s, client_id)
    claims = {"iss": s.settings.issuer, "sub": machine_subject(client_id), "aud": resource, "client_id": client_id,
              "scope": scope, "iat": now, "exp": now + ttl, "jti": secrets.token_urlsafe(16)}
    if s.settings.policy_file is not None:  # what the access policy reads: PROXY_POLICY_FILE
        claims.update(token_attributes({}, s.clients.kind(client_id)))
    log.info("token.issued", grant_type=GRANT_TYPE, client_id=client_id)
    audit.event("audit.token", grant_type=GRANT_TYPE, client_id=client_id, sub=client_id, scope=scope,
                resource=resource)
    return {"access_token": s.keyset.sign(claims, typ="at+jwt"), "token_type": "Bearer",
            "expires_in": ttl, "scope": scope}
