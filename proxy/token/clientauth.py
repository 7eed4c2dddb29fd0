"""Client authentication at /token and /revoke (RFC 6749 §2.3), and the answer to a client they do not
know (§5.2). Parsing Basic lives in proxy/clients/basic.py, looking clients up in
proxy/clients/directory.py, checking a JWT in proxy/token/assertions.py.

A request carries one of: `client_id` alone (public clients), a secret (client_secret_basic or
client_secret_post, pre-registered confidential clients), or a client assertion (private_key_jwt, RFC
7523 §2.2: `client_assertion_type` = the jwt-bearer URN and `client_assertion` = a JWT whose `iss` and
`sub` are the client_id, signed by one of the client's keys, with `aud` this server's issuer or its
token endpoint URL). A client registered with keys must send an assertion; anything else is 401
invalid_client.
"""

from __future__ import annotations

from aiohttp import web

from proxy.errors import InvalidClient, InvalidRequest
from proxy.log import get_logger
from proxy.state import Services
from proxy.token.assertions import (
    CLIENT_ASSERTION_TYPE,
    AssertionRejected,
    Expected,
    unverified_claims,
    verify_assertion,
)
from proxy.web import ratelimit
from proxy.web.ratelimit import Endpoint

log = get_logger()


def unknown_client(request: web.Request) -> InvalidClient:
    """RFC 6749 §5.2 for a client_id that is not (or no longer) registered: 401 invalid_client, with a
    Basic challenge only when the client used the Authorization header."""
    return InvalidClient("This client is not registered (or its registration expired): register again.",
                         challenge="Authorization" in request.headers)


def audiences(s: Services) -> tuple[str, str]:
    """What an assertion's `aud` may be: the issuer (RFC 7523 §3 and the AS metadata's `issuer`), or the
    token endpoint URL (OIDC Core §9, what many client libraries send)."""
    return s.settings.issuer, s.settings.url("/token")


def _asserted_client(header: str | None, params: dict[str, str]) -> str:
    """The client_id an assertion claims (its `sub`, unverified: it only picks whose keys check it)."""
    if header is not None or "client_secret" in params:
        raise InvalidRequest("Use one client authentication method: a client_assertion, Basic or client_secret.")
    assertion, kind = params.get("client_assertion"), params.get("client_assertion_type")
    if not assertion or not kind:
        raise InvalidRequest("client_assertion and client_assertion_type are sent together (RFC 7521 Section 4.2).")
    if kind != CLIENT_ASSERTION_TYPE:
        raise InvalidClient(f"The only client_assertion_type accepted is {CLIENT_ASSERTION_TYPE}.", challenge=False)
    try:
        subject = unverified_claims(assertion).get("sub")
    except AssertionRejected as exc:
        raise InvalidClient(str(exc), challenge=False) from exc
    if not isinstance(subject, str) or not subject:
        raise InvalidClient("The client_assertion has no sub (the client_id).", challenge=False)
    sent = params.get("client_id")
    if sent is not None and sent != subject:
        raise InvalidClient("The client_id differs from the client_assertion's sub.", challenge=False)
    return subject


async def authenticate_client(request: web.Request, s: Services, params: dict[str, str],
                              endpoint: Endpoint | None = None) -> str:
    """The authenticated client_id. `endpoint`: count the attempt against its rate limits first (a
    secret check is deliberately slow, an assertion may make the facade fetch keys)."""
    header = request.headers.get("Authorization")
    if "client_assertion" not in params and "client_assertion_type" not in params:
        credentials = s.clients.identify(header, params)
        if endpoint is not None:
            await ratelimit.admit(request, endpoint, credentials.client_id)
        try:
            return await s.clients.verify(credentials)  # refuses a private_key_jwt client that sent no assertion
        except InvalidClient:
            if endpoint == "token":  # counted per (client, address): a shared client stays usable elsewhere
                await ratelimit.client_credential_failed(request, credentials.client_id)
            raise
    client_id = _asserted_client(header, params)
    if endpoint is not None:
        await ratelimit.admit(request, endpoint, client_id)
    try:
        return await _verify_client_assertion(s, client_id, params)
    except InvalidClient:
        if endpoint == "token":
            await ratelimit.client_credential_failed(request, client_id)
        raise


async def _verify_client_assertion(s: Services, client_id: str, params: dict[str, str]) -> str:
    """private_key_jwt (RFC 7523 §2.2): the assertion verified against the client's registered keys."""
    source = await s.clients.key_source(client_id)
    if source is None:
        raise InvalidClient("This client is not registered for private_key_jwt (it has no keys here).",
                            challenge=False)
    try:
        await verify_assertion(params["client_assertion"], keys=lambda kid: s.clients.key_sets.get(source, kid),
                               expected=Expected(issuer=client_id, subject=client_id, audiences=audiences(s)),
                               replay=s.store)
    except AssertionRejected as exc:
        log.warning("client.assertion_rejected", client_id=client_id, reason=str(exc))
        raise InvalidClient(str(exc), challenge=False) from exc
    return client_id
