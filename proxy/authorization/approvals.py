"""What a browser's remembered approval covers, and the signed cookie that remembers it.

An approval covers exactly what the consent page showed (SEC-72): the client, the origin the browser
is sent back to, the resource and the scopes. A later request for anything beyond it (another
redirect origin, a wider scope set, another resource) is not covered and shows the page again,
naming what is new; a request for a subset of the scopes is covered.

Origins: scheme, host and port. A loopback redirect URI is one origin whatever its port, since RFC 8252
§7.3 lets a native app take any port each run and any local process can listen on any port, so the
port proves nothing. A private-use scheme (RFC 8252 §7.1) is its own origin.

The cookie holds, per approval, keyed MACs (never the plain values) of the client, the origin, the
resource and the optional document, the scopes as words, and the expiry in milliseconds (so a 1 s
lifetime is 1 s, not "until the next whole second"). It is MACed as a whole under the consent secret,
holds at most MAX_REMEMBERED approvals and at most MAX_PAYLOAD bytes (the oldest go first), so it
stays under the 4096 bytes browsers keep for a cookie.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass

from aiohttp import web

from proxy.clients.redirect_uris import is_loopback, validate_redirect_uri
from proxy.consttime import equals
from proxy.state import Services
from proxy.transaction import AuthorizationRequest
from proxy.uris import SPECIAL_PORTS
from proxy.web import browser

APPROVALS = "oauthfacade-consent"
MAX_REMEMBERED = 20
MAX_PAYLOAD = 2900  # bytes of JSON before base64: 4/3 of it, the MAC and the name stay under 4096
_MAC_LABEL = "approvals-v2"  # not the per-client cookie's label: an old cookie is simply not an approval
_DIGEST_CHARS = 16  # 96 bits of a keyed MAC: nobody without the consent secret can aim a collision


@dataclass(frozen=True, slots=True)
class Cover:
    """What one approval covers. `document` is for a client identified by a metadata document URL
    (CIMD): the digest of the document it had when the user approved, so a changed document (new name,
    new redirect URIs) is asked about again. Clients registered here have none."""

    client_id: str
    origin: str
    resource: str
    scopes: tuple[str, ...]
    document: str | None = None


def cover_of(areq: AuthorizationRequest) -> Cover:
    """What approving `areq` covers: exactly what the consent page shows. A client identified by a
    metadata document URL (CIMD) also passes `document=` (the digest of the document it had)."""
    return Cover(client_id=areq.client_id, origin=origin(areq.reply_to), resource=areq.resource,
                 scopes=tuple(areq.scope.split()), document=areq.document)


@dataclass(frozen=True, slots=True)
class Novelty:
    """What a request asks for beyond the closest approval of the same client, for the page to name."""

    first_time: bool = False  # no approval of this client at all: everything is new, nothing is named
    scopes: tuple[str, ...] = ()
    destination: bool = False
    resource: bool = False
    document: bool = False

    def __bool__(self) -> bool:
        return self.first_time or bool(self.scopes or self.destination or self.resource or self.document)


def origin(uri: str) -> str:
    """scheme://host:port of a redirect URI; loopback without its port; a private-use scheme alone.

    Read with the one parser the redirect itself is checked with (`validate_redirect_uri`, SEC-71), so
    the origin an approval covers is the origin the browser is sent to."""
    checked = validate_redirect_uri(uri)
    if isinstance(checked, str):
        return "invalid:" + uri  # never equal to the origin of a URI that may be used
    url = checked.url
    if not url.special:
        return url.scheme + ":"
    if is_loopback(url):
        return f"{url.scheme}://{url.host}"
    return f"{url.scheme}://{url.host}:{url.port or SPECIAL_PORTS[url.scheme]}"


def cannot_phish(uri: str) -> bool:
    """A loopback or private-use-scheme redirect URI: it reaches an app on the user's own device, never
    a remote site, so an error may go there before any approval (RFC 9700 §4.11.2)."""
    checked = validate_redirect_uri(uri)
    if isinstance(checked, str):
        return False
    if checked.url.scheme == "http":
        return is_loopback(checked.url)
    return not checked.url.special


def _digest(s: Services, kind: str, value: str | None) -> str:
    return "" if value is None else browser.mac(s, "cover", kind, value)[:_DIGEST_CHARS]


@dataclass(frozen=True, slots=True)
class Approval:
    """One remembered approval as the cookie holds it: keyed MACs of what it covers, scopes, expiry."""

    client: str
    origin: str
    resource: str
    document: str
    scopes: tuple[str, ...]
    expires_ms: int

    def row(self) -> list[object]:
        return [self.client, self.origin, self.resource, self.document, " ".join(self.scopes), self.expires_ms]


def approval(s: Services, cover: Cover, expires_ms: int) -> Approval:
    """The cookie's form of `cover`, approved until `expires_ms` (ms since the epoch)."""
    return Approval(_digest(s, "client", cover.client_id), _digest(s, "origin", cover.origin),
                    _digest(s, "resource", cover.resource), _digest(s, "document", cover.document),
                    tuple(cover.scopes), expires_ms)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _json(entries: list[Approval]) -> bytes:
    return json.dumps([entry.row() for entry in entries], separators=(",", ":")).encode()


def encode(s: Services, entries: list[Approval]) -> str:
    """The cookie value: base64url(JSON rows) "." MAC."""
    payload = base64.urlsafe_b64encode(_json(entries)).rstrip(b"=").decode()
    return f"{payload}.{browser.mac(s, _MAC_LABEL, payload)}"


def _decode(s: Services, raw: str) -> list[Approval]:
    payload, _, mac = raw.rpartition(".")
    if not payload or not equals(mac, browser.mac(s, _MAC_LABEL, payload)):
        return []
    try:
        rows = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        now = now_ms()
        entries = [Approval(str(c), str(o), str(r), str(d), tuple(str(w).split()), int(e))
                   for c, o, r, d, w, e in rows]
    except (ValueError, TypeError):
        return []
    return [entry for entry in entries if entry.expires_ms > now]


def _current(request: web.Request, s: Services) -> list[Approval]:
    return _decode(s, request.cookies.get(browser.cookie_name(s, APPROVALS), ""))


def novelty(request: web.Request, s: Services, cover: Cover) -> Novelty:
    """What `cover` asks beyond the closest live approval of the same client; empty when covered.
    With no approval of the client at all, everything is new and no single item is named."""
    wanted = approval(s, cover, 0)
    mine = [entry for entry in _current(request, s) if entry.client == wanted.client]
    if not mine:
        return Novelty(first_time=True)

    def differences(entry: Approval) -> Novelty:
        return Novelty(scopes=tuple(word for word in cover.scopes if word not in entry.scopes),
                       destination=entry.origin != wanted.origin, resource=entry.resource != wanted.resource,
                       document=entry.document != wanted.document)

    def weight(found: Novelty) -> tuple[int, int]:
        return (found.destination + found.resource + found.document, len(found.scopes))

    return min((differences(entry) for entry in mine), key=weight)


def covered_since(request: web.Request, s: Services, cover: Cover) -> int | None:
    """When (ms) the latest live approval covering `cover` was given (its expiry less the approval
    lifetime), or None. /callback compares it with an operator's ending of the user's grants."""
    wanted = approval(s, cover, 0)
    given = [entry.expires_ms - s.settings.consent_ttl_s * 1000 for entry in _current(request, s)
             if (entry.client, entry.origin, entry.resource, entry.document)
             == (wanted.client, wanted.origin, wanted.resource, wanted.document)
             and all(word in entry.scopes for word in cover.scopes)]
    return max(given, default=None)


def origin_approved(request: web.Request, s: Services, client_id: str, redirect_uri: str) -> bool:
    """True when this browser holds a live approval of `client_id` for the origin of `redirect_uri`."""
    client, place = _digest(s, "client", client_id), _digest(s, "origin", origin(redirect_uri))
    return any(entry.client == client and entry.origin == place for entry in _current(request, s))


def remember(request: web.Request, s: Services, response: web.StreamResponse, cover: Cover) -> None:
    """Add (or replace: the page shown last is what the user approved) the approval of `cover`."""
    fresh = approval(s, cover, now_ms() + s.settings.consent_ttl_s * 1000)
    same = (fresh.client, fresh.origin, fresh.resource, fresh.document)
    entries = [entry for entry in _current(request, s)
               if (entry.client, entry.origin, entry.resource, entry.document) != same]
    entries = [*sorted(entries, key=lambda entry: entry.expires_ms)[-(MAX_REMEMBERED - 1):], fresh]
    while len(entries) > 1 and len(_json(entries)) > MAX_PAYLOAD:
        entries = entries[1:]  # the oldest first
    response.set_cookie(browser.cookie_name(s, APPROVALS), encode(s, entries),
                        **browser.cookie_options(s, s.settings.consent_ttl_s))  # type: ignore[arg-type]
