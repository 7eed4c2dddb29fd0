"""Which redirect URIs a client may register (RFC 8252, OAuth 2.1 §2.3) and how they match later."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob", "about", "ws", "wss", "ftp"})
MAX_URI = 2000


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def problem(uri: object) -> str | None:
    """Why `uri` may not be registered, or None when it may."""
    if not isinstance(uri, str) or not uri or len(uri) > MAX_URI:
        return "must be a non-empty string"
    if any(ch.isspace() or ord(ch) < 0x20 for ch in uri):
        return "must not contain spaces or control characters"
    if "#" in uri:
        return "must not contain a fragment (RFC 6749 §3.1.2)"
    if "*" in uri:
        return "must not contain a wildcard"
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return "is not a valid URI"
    scheme = parts.scheme.lower()
    if not scheme:
        return "must be absolute"
    if scheme in FORBIDDEN_SCHEMES:
        return f"must not use the {scheme}: scheme"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "must not contain userinfo"
    if scheme == "https":
        return None if parts.hostname else "must have a host"
    if scheme == "http":
        return None if is_loopback(parts.hostname) else "http is only allowed on a loopback host (RFC 8252 §7.3)"
    # RFC 8252 §7.1: a private-use scheme is a reverse domain name, so it has a dot.
    if "." not in scheme and scheme not in ("cursor", "vscode", "vscode-insiders", "claude"):
        return "a private-use scheme must be a reverse domain name such as com.example.app (RFC 8252 §7.1)"
    return None


def matches(requested: str, registered: list[str]) -> bool:
    """Exact match, except that a loopback URI matches on any port (RFC 8252 §7.3)."""
    if requested in registered:
        return True
    try:
        asked = urlsplit(requested)
        if asked.scheme != "http" or not is_loopback(asked.hostname) or "#" in requested:
            return False
        asked.port  # noqa: B018
    except ValueError:
        return False
    for uri in registered:
        known = urlsplit(uri)
        if (known.scheme == "http" and known.hostname == asked.hostname and known.path == asked.path
                and known.query == asked.query):
            return True
    return False
