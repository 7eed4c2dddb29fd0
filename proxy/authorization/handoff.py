"""The hand-off to the upstream IdP, shared by /authorize and the consent form."""

from __future__ import annotations

import secrets

from aiohttp import web

from proxy import pkce
from proxy.metrics import FLOWS_STARTED
from proxy.state import Services
from proxy.transaction import AuthorizationRequest
from proxy.web.render import redirect


async def go_upstream(s: Services, areq: AuthorizationRequest, headers: dict[str, str] | None = None, *,
                      browser_binding: str | None = None) -> web.Response:
    """Store the transaction under a fresh upstream `state` and send the browser to the IdP.

    The facade's own state, nonce and PKCE pair go upstream; the client's never do. With consent on,
    `browser_binding` ties the transaction to the browser that consented (checked at /callback).
    """
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier, challenge = pkce.new_pair()
    extra: dict[str, str] = {}
    if (areq.prompt and "login" in areq.prompt.split()) or areq.max_age == "0":
        extra["prompt"] = "login"  # the client asked for a fresh sign-in (OIDC Core §3.1.2.1)
    location = await s.upstream.authorize_url(state=state, nonce=nonce, code_challenge=challenge, extra=extra,
                                              client_id=areq.client_id)
    record = {**areq.record(), "up_verifier": verifier, "up_nonce": nonce}
    if browser_binding is not None:
        record["browser"] = browser_binding
    await s.store.start_transaction(state, record)
    FLOWS_STARTED.inc()
    return redirect(location, headers)
