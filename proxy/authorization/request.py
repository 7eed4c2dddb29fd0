"""Validation of an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, RFC 8707, RFC 9207).

Order matters: until the client and its redirect_uri are trusted, an error is an HTML page (never a
redirect, or the server becomes an open redirector). Even then, an error goes back to the client only
when the redirect URI cannot phish (loopback or private-use scheme) or this browser has approved the
client for that redirect origin: RFC 9700 §4.11.2, since anyone can register a client whose https
redirect URI is a phishing page and send users a request that fails on purpose (SEC-74).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from proxy import pkce, scopes
from proxy.authorization import approvals
from proxy.clients.redirect_uris import matches, problem
from proxy.errors import InvalidRequest, InvalidTarget, UnsupportedResponseType
from proxy.resources import normalise
from proxy.state import Services
from proxy.transaction import AuthorizationRequest
from proxy.web.routes import REDIRECT_TARGET


async def trusted_client(request: web.Request, s: Services, params: dict[str, str]) -> tuple[dict[str, Any], str, str]:
    """The registration, the redirect_uri as sent, and where to answer; HTML errors before this returns,
    and after it too unless an error may go to this redirect URI (see the module's docstring)."""
    client_id = params.get("client_id")
    if not client_id:
        raise InvalidRequest("The client_id parameter is missing.")
    client = await s.clients.for_authorization(client_id)  # a URL client_id is fetched here, and only here
    if client is None:
        raise InvalidRequest("This client is not registered (or its registration expired). "
                             "Remove the server from the application and add it again.")
    sent = params.get("redirect_uri", "")
    registered: list[str] = client["redirect_uris"]
    if not sent:
        if len(registered) != 1:
            raise InvalidRequest("The redirect_uri parameter is missing.")
        if problem(registered[0]) is not None:
            # Stored before redirect URIs were read as browsers read them (SEC-71): never a target.
            raise InvalidRequest("The registered redirect_uri is no longer accepted. Register the client again.")
        reply_to = registered[0]
    elif matches(sent, registered):
        reply_to = sent
    else:
        raise InvalidRequest("The redirect_uri is not registered for this client.")
    if approvals.cannot_phish(reply_to) or approvals.origin_approved(request, s, client["client_id"], reply_to):
        request[REDIRECT_TARGET] = (reply_to, params.get("state"))
    return client, sent, reply_to


def _resource(s: Services, params: dict[str, str], allowed: list[str] | None) -> str:
    sent = params.get("resource")
    if sent is None:
        return allowed[0] if allowed else next(iter(s.resources.values()))
    canonical = s.resources.get(normalise(sent))
    if canonical is None or (allowed and canonical not in allowed):
        raise InvalidTarget("The resource is not served by this authorization server.")
    return canonical


async def parse(request: web.Request, s: Services, params: dict[str, str]) -> AuthorizationRequest:
    client, sent, reply_to = await trusted_client(request, s, params)
    if params.get("response_type") != "code":
        raise UnsupportedResponseType()
    challenge = params.get("code_challenge")
    if not challenge:
        raise InvalidRequest("PKCE is required: send code_challenge with code_challenge_method=S256.")
    if params.get("code_challenge_method") != "S256":
        raise InvalidRequest("Clients must use code_challenge_method=S256; plain is not allowed.")
    if not pkce.CHALLENGE.match(challenge):
        raise InvalidRequest("The code_challenge is not a base64url SHA-256 digest.")
    if "request" in params or "request_uri" in params:
        raise InvalidRequest("Request objects are not supported.")
    prompts = (params.get("prompt") or "").split()
    if "none" in prompts and len(prompts) > 1:
        raise InvalidRequest("prompt=none cannot be combined with other prompt values (OIDC Core §3.1.2.1).")
    offered = tuple(client.get("allowed_scopes") or s.scopes)  # a pre-registered client may be narrower
    default = tuple(word for word in s.settings.scopes if word in offered)
    cimd = client.get("cimd") or {}
    return AuthorizationRequest(
        client_id=client["client_id"],
        client_name=client.get("client_name") or client["client_id"],
        redirect_uri=sent,
        reply_to=reply_to,
        state=params.get("state"),
        code_challenge=challenge,
        scope=scopes.grantable(params.get("scope"), offered, default),
        resource=_resource(s, params, client.get("allowed_resources")),
        nonce=params.get("nonce"),
        prompt=params.get("prompt"),
        max_age=params.get("max_age"),
        document=cimd.get("digest"),
        client_host=cimd.get("host"),
        loopback_only=bool(cimd) and client.get("loopback_only") is True,
        skip_consent=client.get("skip_consent") is True,
    )
