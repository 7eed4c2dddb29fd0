"""Per-client consent before the upstream redirect: the MCP confused-deputy defence.

The facade is one upstream client serving many downstream clients, so an IdP session alone must not
let a newly registered client obtain tokens silently (MCP authorization spec, "Confused Deputy").
The approval form's CSRF token is an HMAC over the pending-consent id *and* a random browser cookie,
so a form lifted from one browser fails in another. Approvals are remembered in a signed cookie, each
covering what its page showed (see `approvals`); a page for a request beyond one names what is new.
The upstream redirect that follows is bound to the same browser (see `browser`), so a lifted
upstream URL fails at /callback in any other browser.
"""

from __future__ import annotations

import secrets
import unicodedata

from aiohttp import web

from proxy import audit
from proxy.authorization import approvals
from proxy.authorization.handoff import go_upstream
from proxy.clients.redirect_uris import shown_destination
from proxy.consttime import equals
from proxy.errors import AccessDenied, InvalidRequest
from proxy.state import Services, services
from proxy.transaction import AuthorizationRequest
from proxy.web import browser
from proxy.web.forms import form
from proxy.web.render import esc, page
from proxy.web.routes import REDIRECT_TARGET
from proxy.web.upstream_client import acts_upstream_for_client

MAX_SHOWN = 80  # characters of a client_name shown on the page


def shown_name(name: str) -> str:
    """A client-chosen name made safe to read: control, format (bidi overrides, zero-width),
    private-use, unassigned and invisible filler characters become U+FFFD, so "Evil\u202egnp.exe"
    cannot pose as something else and blank padding cannot hide text or make a name look empty.

    Invisible but not whitespace to str.split(): Unicode's Default_Ignorable_Code_Point set
    (DerivedCoreProperties.txt; it includes the Hangul fillers U+115F, U+1160, U+3164, U+FFA0) and
    the blank Braille pattern U+2800."""
    invisible = ((0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
                 (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x2800, 0x2800),
                 (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8),
                 (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF))
    cleaned = "".join(
        "\ufffd" if unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp")
        or any(low <= ord(ch) <= high for low, high in invisible) else ch
        for ch in name)
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= MAX_SHOWN else cleaned[:MAX_SHOWN] + "…"


def shown_host(uri: str) -> str:
    """Where the browser will be sent, read as browsers read it (security-cases SEC-71): `host[:port]`
    exactly as in the `Location` header (ASCII, punycode for IDNs, IPv6 in brackets), or `scheme:`
    for a private-use scheme, whose app is chosen by the scheme."""
    return shown_destination(uri)


# What each identity scope releases (OIDC Core §5.4), in the words the page uses.
SCOPE_MEANINGS = {
    "openid": "sign you in (your account identifier)",
    "email": "your email address",
    "profile": "your name, username, picture and other profile details",
    "offline_access": "stay signed in when you are not using it",
}


def _what_is_new(areq: AuthorizationRequest, new: approvals.Novelty) -> str:
    """The lines naming what this request asks beyond what this browser approved before (SEC-72)."""
    if not new or new.first_time:
        return ""
    items = []
    if new.destination:
        items.append(f"new destination: {esc(shown_host(areq.reply_to))}")
    if new.resource:
        items.append(f"new resource: {esc(areq.resource)}")
    if new.scopes:
        items.append(f"new: {esc(', '.join(new.scopes))}")
    if new.document:
        items.append("new: the application's description changed")
    lines = "".join(f"<li><strong>{item}</strong></li>" for item in items)
    return f'<p>You allowed this application before. This time it asks for more:</p><ul class="new">{lines}</ul>'


def _published_by(areq: AuthorizationRequest) -> str:
    """A CIMD client: the host that publishes its description (CIMD §8.5 SHOULD show it), and the warning
    for a client whose every redirect stays on this device, which anyone can claim (MCP 2026-07-28)."""
    if not areq.client_host:
        return ""
    # The host of a client_id that passed proxy.uris.parse: ASCII, lower-case, as browsers write it.
    text = f"<p>This application is described by <strong>{esc(areq.client_host)}</strong>.</p>"
    if areq.loopback_only:
        text += ("<p><strong>Warning:</strong> this application only returns to a program on this computer "
                 "(localhost). Any program can claim to be it: allow only if you just started it yourself.</p>")
    return text


async def ask(request: web.Request, s: Services, areq: AuthorizationRequest,
              new: approvals.Novelty | None = None) -> web.Response:
    """Keep the request as a pending consent and show the page; nothing goes upstream yet."""
    browser_id = browser.ensure(request, s)
    consent_id = secrets.token_urlsafe(32)
    await s.store.put_pending_consent(consent_id, areq.record())
    csrf = browser.mac(s, "csrf", consent_id, browser_id)
    scope_items = "".join(
        f"<li><code>{esc(word)}</code>" + (f": {esc(SCOPE_MEANINGS[word])}" if word in SCOPE_MEANINGS else "")
        + "</li>" for word in areq.scope.split())
    body = (
        _what_is_new(areq, new or approvals.Novelty(first_time=True)) +
        f"<p><strong>{esc(shown_name(areq.client_name))}</strong> wants to sign you in to "
        f"<code>{esc(areq.resource)}</code>.</p>"
        f"<p>After you sign in, you will be sent to <strong>{esc(shown_host(areq.reply_to))}</strong>.</p>"
        + _published_by(areq) +
        f"<p>It asks for:</p><ul>{scope_items or '<li>basic sign-in</li>'}</ul>"
        '<form method="post" action="consent">'
        f'<input type="hidden" name="consent_id" value="{esc(consent_id)}">'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
        '<button type="submit" name="decision" value="approve">Allow</button>'
        '<button type="submit" name="decision" value="deny">Deny</button></form>'
        "<p>The name above is chosen by the application itself. Only allow applications you recognise "
        "and just started connecting.</p>"
    )
    response = page("Allow access?", body)
    browser.keep(s, response, browser_id)
    return response


async def upstream_from_this_browser(request: web.Request, s: Services, areq: AuthorizationRequest
                                     ) -> web.Response:
    """The upstream redirect, its transaction bound to this browser (the cookie is set or renewed)."""
    browser_id = browser.ensure(request, s)
    response = await go_upstream(s, areq, browser_binding=browser.binding(s, browser_id))
    browser.keep(s, response, browser_id)
    return response


@acts_upstream_for_client
async def decide(request: web.Request) -> web.StreamResponse:
    """POST /consent: the CSRF token must fit this pending consent and this browser."""
    s = services(request)
    params = await form(request)
    consent_id, csrf = params.get("consent_id", ""), params.get("csrf", "")
    browser_id = browser.current(request, s)
    if not consent_id or browser_id is None or not equals(csrf, browser.mac(s, "csrf", consent_id, browser_id)):
        raise InvalidRequest("The consent form is invalid or was submitted from another browser.")
    record = await s.store.take_pending_consent(consent_id)
    if record is None:
        raise InvalidRequest("This consent request expired or was already answered. Start signing in again.")
    areq = AuthorizationRequest.from_record(record)
    request[REDIRECT_TARGET] = (areq.reply_to, areq.state)
    decision = "approve" if params.get("decision") == "approve" else "deny"
    audit.event("audit.consent", client_id=areq.client_id, decision=decision, scope=areq.scope,
                resource=areq.resource)
    if decision != "approve":
        raise AccessDenied("The user denied the request.")
    response = await upstream_from_this_browser(request, s, areq)
    approvals.remember(request, s, response, approvals.cover_of(areq))
    return response
