"""The browser a sign-in belongs to: a random cookie, whose MAC the sign-in transaction keeps.

Consent is given in one browser, and the IdP's answer must come back to that browser. Otherwise an
attacker approves their own client in their own browser, lifts the upstream authorization URL from
the redirect, and sends it to a victim who is signed in at the IdP: the victim's browser would carry
the victim's upstream code to /callback, and the facade would hand the victim's identity to the
attacker's redirect_uri (the confused deputy of GHSA-rww4-4w9c-7733, fixed in FastMCP by a consent
binding cookie, PrefectHQ/fastmcp#3201). /callback therefore requires the cookie whose MAC the
transaction holds, and it checks before it calls the IdP.

The cookie is HttpOnly and SameSite=Lax: sent on the IdP's top-level GET redirect to /callback, never
on a cross-site POST (so a consent form cannot be submitted from another site either).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from aiohttp import web

from proxy.consttime import equals
from proxy.state import Services

BROWSER = "oauthfacade-browser"
_VALUE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


def cookie_name(s: Services, base: str) -> str:
    """`__Host-` cookies on https (no Domain, Path=/, Secure); plain names on a development http issuer."""
    return ("__Host-" if s.settings.issuer.startswith("https://") else "") + base


def cookie_options(s: Services, max_age: int) -> dict[str, object]:
    return {"path": "/", "httponly": True, "samesite": "Lax", "max_age": max_age,
            "secure": s.settings.issuer.startswith("https://")}


def mac(s: Services, *parts: str) -> str:
    """HMAC-SHA256 under the consent secret (derived from the signing key), base64url."""
    digest = hmac.new(s.consent_secret, "\x00".join(parts).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def current(request: web.Request, s: Services) -> str | None:
    """This browser's id, when it sent a well-formed one."""
    value = request.cookies.get(cookie_name(s, BROWSER), "")
    return value if _VALUE.match(value) else None


def ensure(request: web.Request, s: Services) -> str:
    """This browser's id, or a new one (192 bits) to be set with `keep`."""
    return current(request, s) or secrets.token_urlsafe(24)


def keep(s: Services, response: web.StreamResponse, browser: str) -> None:
    """(Re)set the browser cookie for as long as a transaction started now can live."""
    response.set_cookie(cookie_name(s, BROWSER), browser,
                        **cookie_options(s, s.settings.transaction_ttl_s))  # type: ignore[arg-type]


def binding(s: Services, browser: str) -> str:
    """What the transaction stores: a MAC, so a Redis dump does not hand out browser cookies."""
    return mac(s, "browser", browser)


def holds(request: web.Request, s: Services, expected: str) -> bool:
    """True when this request comes from the browser whose binding is `expected`."""
    browser = current(request, s)
    return browser is not None and equals(binding(s, browser), expected)
