"""grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer (RFC 7523 §2.1) with an Identity Assertion JWT
Authorization Grant: MCP Enterprise-Managed Authorization (SEP-990), leg 2.

The client signed its user in at the company's IdP, traded the id_token there for an ID-JAG (RFC 8693),
and presents it here with no browser. Offered only while PROXY_ENTERPRISE_IDPS_FILE lists an IdP.

Who may present one: a pre-registered client whose `grant_types` list this grant (authenticated as its
registration says), or a URL client (CIMD) whose document resolves (public, or as its document says).
A DCR registration may not: an IdP stamps a fixed client_id into its assertions, never one this server
minted for whoever asked (Claude refuses DCR clients for this flow for the same reason).

The order keeps every refusal free of side effects: the JOSE header and the issuer pick the IdP's keys,
the signature and times are proven, every claim is checked, and only then is the `jti` spent (atomically,
across replicas): a refused assertion stores nothing, and a replay finds its `jti` spent. Every refusal
is 400 invalid_grant with a description saying what was wrong.

The answer is an access token audience-restricted to the asserted resource, `sub` the IdP's user as
mapped by its entry, no refresh token (draft §4.4.3; the client asks its IdP for a fresh ID-JAG) and no
id_token (no OpenID sign-in took place here).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from proxy.clients.document import is_client_id_url
from proxy.enterprise import rules
from proxy.errors import ClientDocumentUnusable, InvalidClient, InvalidGrant, InvalidRequest, UnauthorizedClient
from proxy.log import get_logger
from proxy.state import Services
from proxy.token import id_jag
from proxy.token.assertions import AssertionRejected, unverified_claims
from proxy.token.mint import access_token_ttl_s

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
log = get_logger()


def url_client(form: dict[str, str]) -> str | None:
    """The URL client_id (CIMD) a request claims, by `client_id` or by its client assertion's `sub`."""
    claimed = form.get("client_id")
    if not claimed and form.get("client_assertion"):
        try:
            sub = unverified_claims(form["client_assertion"]).get("sub")
        except AssertionRejected:
            return None  # client authentication will refuse it
        claimed = sub if isinstance(sub, str) else None
    return claimed if claimed and is_client_id_url(claimed) else None


async def resolve_document(s: Services, client_id: str) -> None:
    """Read a URL client's document (the shared cache first) before it is authenticated, as /authorize
    does: its `token_endpoint_auth_method` (and keys) then bind this request too, so a document that
    declares private_key_jwt is never taken for a public client because it never signed anyone in."""
    if s.clients.cimd is None:
        raise InvalidClient("URL client ids (CIMD) are not accepted by this server.", challenge=False)
    try:
        await s.clients.for_authorization(client_id)
    except ClientDocumentUnusable as exc:
        raise InvalidClient(exc.description, challenge=False) from None


def _client_limits(s: Services, client_id: str) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """(resources, scopes) the presenting client is limited to; refuses a client that may not use the grant."""
    pre = s.clients.preregistered(client_id)
    if pre is not None:
        return pre.resources, pre.scopes  # the endpoint checked that it lists this grant
    if is_client_id_url(client_id):
        return None, None  # its document was resolved and its authentication checked by the endpoint
    raise UnauthorizedClient("Dynamically registered clients may not use the jwt-bearer grant: use a Client ID "
                             "Metadata Document or a client of PROXY_CLIENTS_FILE.")


async def handle(s: Services, client_id: str, form: dict[str, str]) -> dict[str, Any]:
    try:
        return await _grant(s, client_id, form)
    except InvalidGrant as exc:  # what an operator needs to fix an IdP's setup; never the assertion
        log.warning("idjag.rejected", client_id=client_id, reason=exc.description)
        raise


async def _grant(s: Services, client_id: str, form: dict[str, str]) -> dict[str, Any]:
    assertion = form.get("assertion")
    if not assertion:
        raise InvalidRequest("The assertion parameter is missing.")
    client_resources, client_scopes = _client_limits(s, client_id)
    found = await id_jag.verified(s.enterprise, assertion, s.settings.issuer)
    idp, claims = found.idp, found.claims
    rules.check_audience(claims, s.settings.issuer)
    rules.check_client(claims, idp, client_id)
    granted = rules.authorization(claims, idp, form, resources=s.resources, offered=s.scopes,
                                  client_resources=client_resources, client_scopes=client_scopes)
    await id_jag.spend(s.enterprise, found.pending)  # last: a refused assertion leaves no trace
    now = int(time.time())
    lifetime = access_token_ttl_s(s, client_id)  # the client's own lifetime where the operator set one
    token: dict[str, Any] = {"iss": s.settings.issuer, "sub": granted.subject, "aud": granted.resource,
                             "client_id": client_id, "scope": granted.scope, "iat": now, "exp": now + lifetime,
                             "jti": secrets.token_urlsafe(16)}
    if granted.auth_time is not None:
        token["auth_time"] = granted.auth_time
    log.info("token.issued", grant_type=GRANT_TYPE, client_id=client_id, idp=idp.issuer)
    return {"access_token": s.keyset.sign(token, typ="at+jwt"), "token_type": "Bearer", "expires_in": lifetime,
            "scope": granted.scope}
