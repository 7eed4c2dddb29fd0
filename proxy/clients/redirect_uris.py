"""Which redirect URIs a client may register (RFC 8252, OAuth 2.1 §2.3) and how they match later.

Every URI is read once by `proxy.uris.parse`, whose accepted strings mean the same to browsers
(WHATWG URL) and to the facade, and are their own canonical form (security-cases SEC-71). So the
string a client registers is the string stored, compared, shown on the consent page and put in the
`Location` header; the only comparison that is not string equality, a loopback URI on another port,
compares parsed components of two URIs that both passed the same parser.

Use `validate_redirect_uri` wherever a redirect URI enters the facade (registration, `/authorize`,
a client metadata document): it returns the parsed URI or a reason to refuse it.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from urllib.parse import quote

from proxy.uris import MAX_LENGTH, UriError, Url, parse

FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob", "about", "ws", "wss", "ftp"})
# Private-use schemes without a dot that well-known MCP clients register (RFC 8252 §7.1 wants a dot).
KNOWN_APP_SCHEMES = frozenset({"cursor", "vscode", "vscode-insiders", "claude"})
# Printable ASCII except space, quote, backslash and angle brackets: what a refused URI may show of
# itself in a page or an error_description (RFC 6749 §5.2); the rest is percent-encoded.
DISPLAY_SAFE = "!#$%&'()*+,-./:;=?@[]^_`{|}~"


@dataclass(frozen=True, slots=True)
class RedirectUri:
    """A redirect URI that may be registered and redirected to. `uri` is the one string (as sent,
    as stored, as browsers serialise it); `url` its components as browsers read them."""

    uri: str
    url: Url

    @property
    def loopback(self) -> bool:
        """http on a loopback host (RFC 8252 §7.3): only these may vary their port."""
        return self.url.scheme == "http" and is_loopback(self.url)

    @property
    def shown(self) -> str:
        """What the user is told the browser will go to: `host[:port]` exactly as in the URL (ASCII,
        punycode for IDNs, IPv6 in brackets); for a private-use scheme, which app receives it is
        decided by the scheme alone, so `scheme:` (RFC 8252 §7.1)."""
        return self.url.authority if self.url.special else f"{self.url.scheme}:"


@functools.lru_cache(maxsize=4096)
def is_loopback(url: Url) -> bool:
    """`localhost`, 127.0.0.0/8 or [::1]; the host is canonical, so nothing else can mean these.

    A pure function of the parsed URL, memoised like `validate_redirect_uri` (reading an IP literal
    costs more than the rest of the check, and a sign-in asks about the same URI three times)."""
    if url.host in ("localhost", "[::1]"):
        return True
    address = url.ip
    return isinstance(address, ipaddress.IPv4Address) and address.is_loopback


def validate_redirect_uri(uri: object) -> RedirectUri | str:
    """The redirect URI if it may be registered and used, else a reason to refuse it (a phrase that
    follows "the redirect URI ...", ASCII, without quotes or backslashes).

    A pure function of the string, so answers are memoised (bounded, least recently used): one sign-in
    reads the same URI at /register, /authorize, for the approval's origin and the error-redirect rule.
    """
    if not isinstance(uri, str) or len(uri) > MAX_LENGTH:
        return _validate(uri)  # unhashable or oversized input is never kept
    return _validate_cached(uri)


def _validate(uri: object) -> RedirectUri | str:
    """The rules of `validate_redirect_uri`.

    Accepted: https; http on a loopback host (RFC 8252 §7.3); a private-use scheme that is a reverse
    domain name (RFC 8252 §7.1) or a known app's scheme. Never: a fragment (RFC 6749 §3.1.2), a
    wildcard, userinfo, script schemes, or anything `proxy.uris.parse` refuses (strings a browser
    would read differently or rewrite).
    """
    if isinstance(uri, str) and "*" in uri:
        return "must not contain a wildcard"
    try:
        url = parse(uri)
    except UriError as exc:
        return exc.reason
    candidate = RedirectUri(url.href, url)
    if url.scheme in FORBIDDEN_SCHEMES:
        return f"must not use the {url.scheme}: scheme"
    if url.scheme == "https":
        return candidate
    if url.scheme == "http":
        return candidate if candidate.loopback else "may use http only on a loopback host (RFC 8252 section 7.3)"
    if "." not in url.scheme and url.scheme not in KNOWN_APP_SCHEMES:
        return "must use a reverse domain name such as com.example.app as its private-use scheme (RFC 8252 section 7.1)"
    return candidate


def problem(uri: object) -> str | None:
    """Why `uri` may not be registered, or None when it may."""
    checked = validate_redirect_uri(uri)
    return checked if isinstance(checked, str) else None


def matches(requested: str, registered: list[str]) -> bool:
    """Exact match, except that a loopback URI matches on any port (RFC 8252 §7.3).

    The requested URI must pass `validate_redirect_uri` itself, so a registration stored before this
    parser existed cannot be matched through a string a browser reads differently; the loopback rule
    compares scheme, host, path and query of two URIs that both passed it."""
    asked = validate_redirect_uri(requested)
    if isinstance(asked, str):
        return False
    if asked.uri in registered:
        return True
    if not asked.loopback:
        return False
    for uri in registered:
        known = validate_redirect_uri(uri)
        if (isinstance(known, RedirectUri) and known.loopback and known.url.host == asked.url.host
                and known.url.path == asked.url.path and known.url.query == asked.url.query):
            return True
    return False


def shown_destination(uri: str) -> str:
    """`RedirectUri.shown` for a URI that passes `validate_redirect_uri`; any other (a registration
    stored before this parser existed) is shown whole, non-ASCII and backslashes percent-encoded,
    so nothing in it is hidden or reinterpreted."""
    checked = validate_redirect_uri(uri)
    if isinstance(checked, RedirectUri):
        return checked.shown
    return quote(uri, safe=DISPLAY_SAFE, errors="backslashreplace")


_validate_cached = functools.lru_cache(maxsize=4096)(_validate)
