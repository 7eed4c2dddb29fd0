"""How answers look: JSON bodies, error redirects, and HTML pages that reflect nothing unescaped."""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from aiohttp import web

from proxy.errors import OAuthError

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https: http:; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def json_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), status=status,
                        content_type="application/json", headers=headers)


def with_query(uri: str, params: dict[str, str | None]) -> str:
    """`uri` plus `params`, keeping any query it already has (RFC 6749 §3.1.2); None values left out."""
    extra = urlencode({name: value for name, value in params.items() if value is not None})
    if "?" not in uri and "#" not in uri:  # no query to keep, no fragment to drop: the URI as registered
        return f"{uri}?{extra}"
    parts = urlsplit(uri)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def redirect(location: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=302, headers={"Location": location, **NO_STORE, **(headers or {})})


def error_redirect(error: OAuthError, redirect_uri: str, state: str | None, issuer: str) -> web.Response:
    """RFC 6749 §4.1.2.1 with the RFC 9207 `iss`: the error goes back to the client."""
    return redirect(with_query(redirect_uri, {
        "error": error.error, "error_description": error.description, "state": state, "iss": issuer}))


def page(title: str, body_html: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A minimal HTML page. Callers pass `body_html` built with `esc`; nothing else is reflected."""
    document = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)}</title><style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;"
        "margin:3rem auto;padding:0 1rem;color:#222}code{background:#f3f3f3;padding:0 .2em}"
        "button{font:inherit;padding:.4rem 1rem;margin-right:.5rem}</style></head>"
        f"<body><h1>{esc(title)}</h1>{body_html}</body></html>"
    )
    return web.Response(text=document, status=status, content_type="text/html",
                        headers={**HTML_HEADERS, **NO_STORE, **(headers or {})})


def error_page(error: OAuthError) -> web.Response:
    body = (f"<p>{esc(error.description)}</p><p>Error code: <code>{esc(error.error)}</code></p>"
            "<p>Return to the application and start signing in again.</p>")
    status = error.status if error.status != 401 else 400
    retry = {name: value for name, value in error.headers.items() if name == "Retry-After"}  # 429, 503
    return page("Sign-in cannot continue", body, status=status, headers=retry)


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)
