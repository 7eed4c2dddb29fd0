"""Per-client consent before the upstream redirect: the MCP confused-deputy defence.

The facade is one upstream client serving many downstream clients, so an IdP session alone must not
let a newly registered client obtain tokens silently (MCP authorization spec, "Confused Deputy").
The approval form's CSRF token is an HMAC over the pending-consent id *and* a random browser cookie,
so a form lifted from one browser fails in another. Approvals are remembered in a signed cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from urllib.parse import urlsplit

from aiohttp import web

from proxy.authorization.handoff import go_upstream
from proxy.authorization.request import AuthorizationRequest
from proxy.errors import AccessDenied, InvalidRequest
from proxy.state import Services, services
from proxy.web.forms import form
from proxy.web.render import esc, page
from proxy.web.routes import REDIRECT_TARGET

MAX_REMEMBERED = 20


def _names(s: Services) -> tuple[str, str]:
    """`__Host-` cookies on https (no Domain, Path=/, Secure); plain names on a development http issuer."""
    prefix = "__Host-" if s.settings.issuer.startswith("https://") else ""
    return prefix + "oauthfacade-consent", prefix + "oauthfacade-browser"


def _cookie_options(s: Services, max_age: int) -> dict[str, object]:
    return {"path": "/", "httponly": True, "samesite": "Lax", "max_age": max_age,
            "secure": s.settings.issuer.startswith("https://")}


def _mac(s: Services, *parts: str) -> str:
    digest = hmac.new(s.consent_secret, "\x00".join(parts).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _approvals(request: web.Request, s: Services) -> dict[str, int]:
    raw = request.cookies.get(_names(s)[0], "")
    payload, _, mac = raw.rpartition(".")
    if not payload or not hmac.compare_digest(mac, _mac(s, "consent", payload)):
        return {}
    try:
        entries = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        now = int(time.time())
        return {str(client): int(exp) for client, exp in entries.items() if int(exp) > now}
    except (ValueError, TypeError, AttributeError):
        return {}


def approved(request: web.Request, s: Services, client_id: str) -> bool:
    return client_id in _approvals(request, s)


def _remember(request: web.Request, s: Services, response: web.StreamResponse, client_id: str) -> None:
    entries = _approvals(request, s)
    entries[client_id] = int(time.time()) + s.settings.consent_ttl_s
    newest = dict(sorted(entries.items(), key=lambda item: item[1])[-MAX_REMEMBERED:])
    payload = base64.urlsafe_b64encode(json.dumps(newest, separators=(",", ":")).encode()).rstrip(b"=").decode()
    response.set_cookie(_names(s)[0], f"{payload}.{_mac(s, 'consent', payload)}",
                        **_cookie_options(s, s.settings.consent_ttl_s))  # type: ignore[arg-type]


async def ask(request: web.Request, s: Services, areq: AuthorizationRequest) -> web.Response:
    """Keep the request as a pending consent and show the page; nothing goes upstream yet."""
    browser = request.cookies.get(_names(s)[1]) or secrets.token_urlsafe(24)
    consent_id = secrets.token_urlsafe(32)
    await s.store.put_pending_consent(consent_id, areq.record())
    csrf = _mac(s, "csrf", consent_id, browser)
    host = urlsplit(areq.reply_to).netloc or urlsplit(areq.reply_to).scheme + ":"
    scope_items = "".join(f"<li><code>{esc(word)}</code></li>" for word in areq.scope.split())
    body = (
        f"<p><strong>{esc(areq.client_name)}</strong> wants to sign you in to "
        f"<code>{esc(areq.resource)}</code>.</p>"
        f"<p>After you sign in, you will be sent to <strong>{esc(host)}</strong>.</p>"
        f"<p>It asks for:</p><ul>{scope_items or '<li>basic sign-in</li>'}</ul>"
        '<form method="post" action="consent">'
        f'<input type="hidden" name="consent_id" value="{esc(consent_id)}">'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
        '<button type="submit" name="decision" value="approve">Allow</button>'
        '<button type="submit" name="decision" value="deny">Deny</button></form>'
        "<p>Only allow applications you recognise and just started connecting.</p>"
    )
    response = page("Allow access?", body)
    response.set_cookie(_names(s)[1], browser, **_cookie_options(s, s.settings.transaction_ttl_s))  # type: ignore[arg-type]
    return response


async def decide(request: web.Request) -> web.StreamResponse:
    """POST /consent: the CSRF token must fit this pending consent and this browser."""
    s = services(request)
    params = await form(request)
    consent_id, csrf = params.get("consent_id", ""), params.get("csrf", "")
    browser = request.cookies.get(_names(s)[1], "")
    if not consent_id or not browser or not hmac.compare_digest(csrf, _mac(s, "csrf", consent_id, browser)):
        raise InvalidRequest("The consent form is invalid or was submitted from another browser.")
    record = await s.store.take_pending_consent(consent_id)
    if record is None:
        raise InvalidRequest("This consent request expired or was already answered. Start signing in again.")
    areq = AuthorizationRequest.from_record(record)
    request[REDIRECT_TARGET] = (areq.reply_to, areq.state)
    if params.get("decision") != "approve":
        raise AccessDenied("The user denied the request.")
    response = await go_upstream(s, areq)
    _remember(request, s, response, areq.client_id)
    return response
