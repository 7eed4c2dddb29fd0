"""One strict URL parser whose every accepted string means the same to the facade and to a browser.

Browsers parse URLs by the WHATWG URL Standard, which differs from RFC 3986 and from `urllib.parse`:
a backslash ends the authority of an http(s) URL, `%65vil.com` is `evil.com`, `0x7f.1` is
`127.0.0.1`, `ß` becomes `xn--...` (UTS #46 non-transitional), tabs and newlines vanish, `/a/%2e%2e/b`
is `/b`. Whenever two parsers read one string differently, what the facade checks is not what the
browser visits (security-cases SEC-71).

So this module accepts only a subset of URLs: those the WHATWG parser leaves exactly as they are
(its serialisation, `href`, equals the input byte for byte) and that need no WHATWG rule this module
does not implement. Every other string is refused with a reason, even when a browser would read it
harmlessly. What is stored, matched, shown and redirected to is therefore one string, and `Url`'s
components are the ones `new URL(href)` reports. `tests/security/test_uri_differential.py` checks
that against node's URL over a corpus and generated input.

The subset:
- `http`/`https` (WHATWG "special"): `scheme://host[:port]/path[?query]`. The host is a lower-case
  ASCII domain (labels of `a-z 0-9 -`, RFC 5891 hyphen rules, no empty label, no trailing dot; an
  `xn--` label must be a valid IDNA A-label, which browsers keep as is), a dotted-decimal IPv4 address
  in canonical form, or an IPv6 address in brackets as WHATWG serialises it (RFC 5952 compression, no
  embedded IPv4, no zone id). The port, when present, is canonical (no leading zero, not the scheme's
  default, 1-65535). The path starts with `/`.
- any other scheme (a private-use scheme, RFC 8252 §7.1): `scheme:/path[?query]` or
  `scheme://host/path[?query]` with the same lower-case domain syntax for the (opaque) host, no port.
- Everywhere: printable ASCII from RFC 3986's unreserved and sub-delims plus `: / ? %` (`%` only
  before two hex digits), no `'` (WHATWG encodes it in special queries), no `@` (userinfo), no `#`,
  no backslash, no dot segments (`.`, `..`, `%2e`, ...) in the path, no empty query.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass

import idna

MAX_LENGTH = 2000
SPECIAL_PORTS = {"http": 80, "https": 443}  # WHATWG "special schemes" this parser accepts
REFUSED_SPECIAL = frozenset({"file", "ftp", "ws", "wss"})  # special too, but with rules not implemented here

_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
# RFC 3986 unreserved + sub-delims (without "'") + ":" "/" "?" "%": characters WHATWG leaves alone in
# paths and queries of special and non-special URLs alike.
_SAFE = re.compile(r"[A-Za-z0-9\-._~!$&()*+,;=:/?%]*")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,2}")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_IPV6_CHARS = re.compile(r"[0-9a-f:]+")
_DOT_SEGMENTS = frozenset({".", "..", "%2e", ".%2e", "%2e.", "%2e%2e"})  # WHATWG "single/double-dot segment"


class UriError(ValueError):
    """The string is not in the accepted subset; `reason` says why, as a phrase after "the URI"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Url:
    """A parsed URL. `href` is the input, which is also its WHATWG serialisation; the other fields are
    what WHATWG's `URL` reports (`protocol` without the colon, `hostname`, `port`, `pathname`,
    `search` without the `?`)."""

    href: str
    scheme: str
    host: str  # "" when there is no authority; IPv6 in brackets, as WHATWG's hostname has it
    port: int | None
    path: str
    query: str | None  # None: no "?"

    @property
    def special(self) -> bool:
        return self.scheme in SPECIAL_PORTS

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The host as an address when it is an IP literal (only special URLs have those)."""
        if not self.special:
            return None
        if self.host.startswith("["):
            return ipaddress.IPv6Address(self.host[1:-1])
        if self.host.rsplit(".", 1)[-1][:1].isdigit():  # a domain's last label never starts with one here
            return ipaddress.IPv4Address(self.host)
        return None

    @property
    def authority(self) -> str:
        """host[:port] as in the URL (and in the browser's address bar)."""
        return self.host if self.port is None else f"{self.host}:{self.port}"


def parse(text: object) -> Url:
    """Parse `text` if it is in the accepted subset, else raise `UriError` saying why."""
    if not isinstance(text, str) or not text:
        raise UriError("must be a non-empty string")
    if len(text) > MAX_LENGTH:
        raise UriError(f"is longer than {MAX_LENGTH} characters")
    _check_characters(text)
    scheme, colon, rest = text.partition(":")
    if not colon or not scheme:
        raise UriError("must be absolute (start with a scheme such as https:)")
    if not _SCHEME.fullmatch(scheme):
        raise UriError("must start with a lower-case scheme (browsers lower-case it, and strings must not change)")
    if scheme in REFUSED_SPECIAL:
        raise UriError(f"must not use the {scheme}: scheme")
    if scheme in SPECIAL_PORTS:
        return _special(text, scheme, rest)
    return _non_special(text, scheme, rest)


def _check_characters(text: str) -> None:
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        # Browsers strip tabs and newlines anywhere, and leading/trailing spaces and controls.
        raise UriError("must not contain spaces, tabs, newlines or control characters")
    if "#" in text:
        raise UriError("must not contain a fragment (RFC 6749 section 3.1.2)")
    if "\\" in text:
        raise UriError("must not contain a backslash (browsers read it as /, which changes the host)")
    if "@" in text:
        raise UriError("must not contain @ (userinfo: browsers and servers disagree on where the host starts)")
    if not text.isascii():
        raise UriError("must be ASCII: write a host in its punycode form (xn--...) and percent-encode the rest")
    if _PERCENT.search(text):
        raise UriError("has a % that does not start a %XX escape")
    unsafe = _SAFE.sub("", text.replace("[", "").replace("]", ""))
    if unsafe:
        named = " ".join(f"U+{ord(ch):04X}" for ch in sorted(set(unsafe)))  # the reason may be shown
        raise UriError(f"must not contain the character(s) {named}")


def _split_tail(rest: str) -> tuple[str, str, str | None]:
    """`authority-or-nothing path ? query` after the scheme's "//": (before the path, path, query)."""
    head, question, query = rest.partition("?")
    if question and not query:
        raise UriError("must not end with an empty query (?)")
    slash = head.find("/")
    before, path = (head, "") if slash < 0 else (head[:slash], head[slash:])
    return before, path, query if question else None


def _special(text: str, scheme: str, rest: str) -> Url:
    if not rest.startswith("//"):
        raise UriError(f"must have the form {scheme}://host/path (browsers insert the missing slashes)")
    authority, path, query = _split_tail(rest[2:])
    if not authority:
        raise UriError("must have a host")
    host, port = _host_and_port(authority, scheme)
    if not path:
        raise UriError(f"must have a path, at least / ({scheme}://{authority}/ is how browsers write it)")
    _check_path(path, query)
    return Url(text, scheme, host, port, path, query)


def _non_special(text: str, scheme: str, rest: str) -> Url:
    if rest.startswith("//"):
        authority, path, query = _split_tail(rest[2:])
        if ":" in authority:
            raise UriError("must not have a port after a private-use scheme")
        if "[" in authority or "]" in authority:
            raise UriError("must not have an IP literal after a private-use scheme")
        host = _domain(authority) if authority else ""
        if not host:
            raise UriError(f"must have a host after {scheme}:// (or be written {scheme}:/path)")
        if not path:
            raise UriError(f"must have a path after the host, at least / ({scheme}://{host}/)")
    elif rest.startswith("/"):
        host = ""
        _, path, query = _split_tail(rest)
    else:
        raise UriError(f"must have a path starting with / after the scheme ({scheme}:/...)")
    _check_path(path, query)
    return Url(text, scheme, host, None, path, query)


def _check_path(path: str, query: str | None) -> None:
    if "[" in path or "]" in path or (query is not None and ("[" in query or "]" in query)):
        raise UriError("must not contain [ or ] outside an IPv6 host")
    # WHATWG resolves dot segments, percent-encoded ones included; RFC 3986 parsers mostly do not.
    if any(segment.lower() in _DOT_SEGMENTS for segment in path.split("/")):
        raise UriError("must not contain . or .. path segments (plain or percent-encoded)")


def _host_and_port(authority: str, scheme: str) -> tuple[str, int | None]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise UriError("has an unclosed [ in its host")
        host, after = _ipv6(authority[1:end]), authority[end + 1:]
        if after and not after.startswith(":"):
            raise UriError("has characters after the IPv6 address")
        port_text = after[1:] if after else None
    else:
        if "[" in authority or "]" in authority:
            raise UriError("must not contain [ or ] outside an IPv6 host")
        name, colon, port_text_or_empty = authority.partition(":")
        port_text = port_text_or_empty if colon else None
        host = _ipv4_or_domain(name)
    if port_text is None:
        return host, None
    if not _PORT.fullmatch(port_text) or int(port_text) > 65535:
        raise UriError("must have a port from 1 to 65535 written without leading zeros (or none)")
    port = int(port_text)
    if port == SPECIAL_PORTS[scheme]:
        raise UriError(f"must not name the default port {port} of {scheme} (browsers drop it)")
    return host, port


def _ipv4_or_domain(name: str) -> str:
    if not name:
        raise UriError("must have a host")
    if "%" in name:
        raise UriError("must not have a percent-encoded host")
    if name != name.lower():
        raise UriError("must have a lower-case host (browsers lower-case it, and strings must not change)")
    last = name.rsplit(".", 1)[-1]
    # WHATWG "ends in a number": such a host is parsed as IPv4 (0x7f.1, 127.1, 2130706433, 010.0.0.1).
    if last[:1].isdigit():
        parts = name.split(".")
        if len(parts) != 4 or not all(_DECIMAL.fullmatch(part) and int(part) <= 255 for part in parts):
            raise UriError("must write an IPv4 host as four decimal numbers 0-255 without leading zeros")
        return name
    return _domain(name)


def _domain(name: str) -> str:
    if name.endswith("."):
        raise UriError("must not have a host ending in a dot")
    if len(name) > 253:
        raise UriError("has a host longer than 253 characters")
    labels = name.split(".")
    for label in labels:
        if not label:
            raise UriError("must not have an empty label (..) in its host")
        if len(label) > 63 or not _LABEL.fullmatch(label):
            raise UriError("must have a host of lower-case letters, digits, dots and inner hyphens")
        if label[2:4] == "--":
            if not label.startswith("xn--"):
                raise UriError("must not have -- in the third and fourth place of a host label (RFC 5891)")
            _a_label(label)
    return name


def _a_label(label: str) -> None:
    """An `xn--` label browsers keep as is: a valid IDNA 2008 A-label (a subset of what UTS #46
    accepts), in the non-transitional encoding, and not right-to-left (whose Bidi rule spans the whole
    host name)."""
    try:
        unicode = idna.decode(label)
        if idna.encode(unicode, uts46=True, transitional=False).decode("ascii") != label:
            raise UriError(f"has a host label {label} that is not in canonical punycode form")
    except idna.IDNAError as exc:
        raise UriError(f"has a host label {label} that is not valid punycode for a domain name") from exc
    if unicode.isascii() or not unicodedata.is_normalized("NFC", unicode):
        raise UriError(f"has a host label {label} that is not valid punycode for a domain name")
    if any(unicodedata.bidirectional(ch) in ("R", "AL", "AN") for ch in unicode):
        raise UriError("must not have a right-to-left host label")


def _ipv6(text: str) -> str:
    if not text or "%" in text:
        raise UriError("must have an IPv6 host without a zone id")
    if not _IPV6_CHARS.fullmatch(text):
        raise UriError("must write an IPv6 host in lower-case hex without an embedded IPv4 address")
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError as exc:
        raise UriError("has an invalid IPv6 host") from exc
    canonical = ipv6_serialised(int(address))
    if canonical != text:
        raise UriError(f"must write its IPv6 host as browsers do: [{canonical}]")
    return f"[{text}]"


def ipv6_serialised(address: int) -> str:
    """The WHATWG IPv6 serializer: lower-case hex pieces, the first longest run of two or more zero
    pieces compressed to `::` (RFC 5952 §4.2, which WHATWG follows)."""
    pieces = [(address >> (112 - 16 * index)) & 0xFFFF for index in range(8)]
    best_start, best_length, index = -1, 1, 0
    while index < 8:
        end = index
        while end < 8 and pieces[end] == 0:
            end += 1
        if end - index > best_length:
            best_start, best_length = index, end - index
        index = max(end, index + 1)
    if best_start < 0:
        return ":".join(f"{piece:x}" for piece in pieces)
    left = ":".join(f"{piece:x}" for piece in pieces[:best_start])
    right = ":".join(f"{piece:x}" for piece in pieces[best_start + best_length:])
    return f"{left}::{right}"
