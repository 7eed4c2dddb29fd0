"""GET /callback: the upstream IdP sends the browser back here (OIDC Core §3.1.2.5).

The transaction is taken once by the upstream `state`; the upstream code is redeemed with the
facade's own credentials and verifier; the id_token is validated; then the facade issues its own
code, bound to everything the client asked for, and answers the client with `code`, `state`, `iss`.
The upstream's own `iss` and error text never reach the client; its error code is mapped to a fixed
set (UPSTREAM_ERRORS).
"""

from __future__ import annotations

import secrets

from aiohttp import web

from proxy import audit
from proxy.claims import is_machine_subject
from proxy.errors import (
    AccessDenied,
    ConsentRequired,
    InvalidRequest,
    OAuthError,
    ServerError,
    UpstreamAuthorizationError,
    UpstreamError,
)
from proxy.log import get_logger
from proxy.state import services
from proxy.transaction import AuthorizationRequest
from proxy.upstream import token_set
from proxy.upstream.failures import Judgement, judged
from proxy.upstream.offline import expect_refresh_token
from proxy.upstream.policy import UpstreamClass
from proxy.web import browser
from proxy.web.forms import query
from proxy.web.render import redirect, with_query
from proxy.web.routes import REDIRECT_TARGET
from proxy.web.upstream_client import acts_upstream_for_client

log = get_logger()

# What an upstream authorization error means to the client (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6).
# The facade, not the client, made the upstream request: an upstream complaint about that request
# (invalid_request, invalid_scope, unauthorized_client, request objects...) is the facade's problem,
# server_error. OIDC's interaction errors (login_required...) answer a prompt=none: passed through when
# the client itself sent prompt=none, else they mean "not signed in" to it: access_denied. Anything
# else, known or not, is server_error. The upstream's error_description is never relayed.
UPSTREAM_ERRORS: dict[str, tuple[str, str]] = {
    "access_denied": ("access_denied", "The sign-in was denied at the identity provider."),
    "temporarily_unavailable": ("temporarily_unavailable", "The identity provider is unavailable; retry later."),
}
INTERACTION_ERRORS = frozenset({"login_required", "interaction_required", "consent_required",
                                "account_selection_required"})
NOT_SIGNED_IN = "The identity provider did not sign the user in without interaction."
UPSTREAM_ERROR_DEFAULT = ("server_error", "The identity provider could not complete the sign-in.")


def client_error(upstream_error: str, *, client_prompted_none: bool) -> tuple[str, str]:
    """(error, description) the client hears for the IdP's error code `upstream_error`."""
    if upstream_error in INTERACTION_ERRORS:
        return (upstream_error if client_prompted_none else "access_denied"), NOT_SIGNED_IN
    return UPSTREAM_ERRORS.get(upstream_error, UPSTREAM_ERROR_DEFAULT)


def _redemption_failed(judgement: Judgement) -> OAuthError:
    """The upstream error policy at code redemption: the code is spent (terminal) -> access_denied, the
    user may sign in again; the facade's configuration is refused (operator) -> server_error, logged as
    an error; the IdP is down, slow or garbled (transient) -> temporarily_unavailable. Nothing is stored."""
    if judgement.terminal:
        return AccessDenied("The identity provider refused to complete the sign-in.", detail=judgement.error.detail)
    if judgement.upstream_class is UpstreamClass.OPERATOR:
        return ServerError("The identity provider refused this service's request.", detail=judgement.error.detail)
    return judgement.error


def new_code() -> tuple[str, str]:
    """(family id, code): the code names the refresh family it will open, for one-slot atomicity."""
    family = secrets.token_urlsafe(16)
    return family, f"{family}.{secrets.token_urlsafe(32)}"


def _asked_again(areq: AuthorizationRequest) -> dict[str, str | None]:
    """The client's authorization request again, with prompt=consent: the page shows whatever is remembered."""
    prompts = " ".join(sorted(areq.prompts | {"consent"}))
    return {"response_type": "code", "client_id": areq.client_id, "redirect_uri": areq.redirect_uri or None,
            "scope": areq.scope or None, "state": areq.state, "code_challenge": areq.code_challenge,
            "code_challenge_method": "S256", "resource": areq.resource, "nonce": areq.nonce, "prompt": prompts,
            "max_age": areq.max_age}


@acts_upstream_for_client
async def callback(request: web.Request) -> web.Response:
    s = services(request)
    params = query(request)
    state = params.get("state")
    if not state:
        raise InvalidRequest("The identity provider's answer has no state.")
    if "code" not in params and "error" not in params:
        # A malformed answer must not use up the real one's transaction (RFC 6749 §4.1.2).
        raise InvalidRequest("The identity provider's answer has neither a code nor an error.")
    record = await s.store.take_transaction(state)
    if record is None:
        raise InvalidRequest("This sign-in is unknown, expired or was already completed. Start again.")
    if record.get("browser") is not None and not browser.holds(request, s, record["browser"]):
        # Consent was given in another browser: a lifted upstream URL (GHSA-rww4-4w9c-7733). No redirect,
        # no upstream call: the victim's code must not reach the attacker's client.
        log.warning("callback.browser_mismatch", client_id=record.get("client_id"))
        raise AccessDenied("This sign-in was started in another browser. Start again from the application.")
    areq = AuthorizationRequest.from_record(record)
    request[REDIRECT_TARGET] = (areq.reply_to, areq.state)

    if not await s.upstream.accepts_response_issuer(params.get("iss")):
        # RFC 9207 §2.4: an answer naming another issuer, or none where the upstream promised one, is a
        # mix-up candidate; its code is never redeemed.
        log.warning("callback.issuer_mismatch", client_id=areq.client_id, iss_sent="iss" in params)
        raise AccessDenied("The sign-in answer came from another identity provider.")

    if "error" in params:
        log.info("callback.upstream_error", upstream_error=params["error"][:64], client_id=areq.client_id)
        raise UpstreamAuthorizationError(*client_error(params["error"],
                                                       client_prompted_none="none" in (areq.prompt or "").split()))
    upstream_code = params.get("code")
    if not upstream_code:
        raise ServerError("The identity provider's answer has no code.")
    try:
        tokens = await s.upstream.exchange_code(upstream_code, record["up_verifier"], client_id=areq.client_id)
        identity = await s.upstream.identity(tokens, record["up_nonce"], client_id=areq.client_id)
    except UpstreamError as exc:
        raise _redemption_failed(judged(exc, "callback")) from exc
    if is_machine_subject(identity.sub):  # it would be that machine client at every backend
        log.warning("callback.reserved_subject", client_id=areq.client_id)
        raise AccessDenied("This account cannot sign in here.")
    expect_refresh_token(s.upstream.profile, s.settings, tokens, await s.upstream.advertised_scopes())
    if areq.approved_ms is not None and await s.store.grants.approvals_ended(identity.sub, areq.client_id,
                                                                           areq.approved_ms):
        # Consent was skipped by an approval this browser remembers from before an operator ended this
        # user's (or client's) grants: it no longer counts. The upstream grant is returned unused, and
        # the request starts again with the consent page (prompt=consent), or fails under prompt=none.
        log.info("callback.approval_ended", client_id=areq.client_id)
        await s.upstream.revoke_quietly(token_set(tokens), areq.client_id)
        if "none" in areq.prompts:
            raise ConsentRequired()
        return redirect(with_query(s.settings.issuer + "/authorize", _asked_again(areq)))

    _family, code = new_code()
    grant = {"client_id": areq.client_id, "sub": identity.sub, "scope": areq.scope, "resource": areq.resource,
             **({"document": areq.document} if areq.document else {}),  # the CIMD snapshot it was granted under
             "nonce": areq.nonce, "claims": identity.claims, "auth_time": identity.auth_time}
    await s.store.issue_code(code, client_id=areq.client_id, redirect_uri=areq.redirect_uri,
                             challenge=areq.code_challenge, grant=grant, upstream=token_set(tokens))
    log.info("code.issued", client_id=areq.client_id, sub=identity.sub)
    audit.event("audit.sign_in", client_id=areq.client_id, sub=identity.sub, profile=s.upstream.profile.name,
                scope=areq.scope, resource=areq.resource)
    return redirect(with_query(areq.reply_to, {"code": code, "state": areq.state, "iss": s.settings.issuer}))
