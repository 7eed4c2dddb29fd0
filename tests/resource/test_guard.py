"""The gateway's cache of verified tokens: never past `exp`, bounded, per resource."""

from __future__ import annotations

import time
from types import MappingProxyType

from proxy.resource.core import Principal
from proxy.resource.guard import VerifiedTokens


def _principal(expires_at: float, resource: str = "https://mcp.example.com/mcp") -> Principal:
    return Principal(sub="u", client_id="c", scopes=("openid",), resource=resource, jti="j", family="f",
                     expires_at=int(expires_at), claims=MappingProxyType({}))


def test_an_expired_entry_is_never_returned() -> None:
    """A token cached while valid is a miss once its `exp` has passed, so the core checks it again (and
    refuses it): the cache never extends a token's life."""
    cache = VerifiedTokens()
    cache.put("t1", "r", _principal(time.time() - 1))
    cache.put("t2", "r", _principal(time.time() + 60))
    assert cache.get("t1", "r") is None
    assert cache.get("t2", "r") is not None


def test_entries_are_per_resource_and_bounded() -> None:
    """A token verified for one resource is a miss for another (its audience was checked for one only),
    and the least recently used entry goes first when the cache is full."""
    cache = VerifiedTokens(size=2)
    later = time.time() + 60
    cache.put("a", "r1", _principal(later))
    assert cache.get("a", "r2") is None
    cache.put("b", "r1", _principal(later))
    assert cache.get("a", "r1") is not None  # a is now the most recently used
    cache.put("c", "r1", _principal(later))
    assert cache.get("b", "r1") is None and cache.get("a", "r1") is not None and cache.get("c", "r1") is not None


def test_identity_header_values_cannot_split_or_smuggle_a_header() -> None:
    """A subject, username or verified email carrying CR/LF, non-ASCII or `%` reaches the backend
    percent-encoded: every X-Auth-Request-* value is printable ASCII (no header split, no bytes a
    backend decodes differently), and decoding gives back exactly what the IdP said."""
    from urllib.parse import unquote

    from proxy.resource.identity import identity_headers

    sub = "user\r\nX-Auth-Request-Groups: admins"
    claims = {"email": "zoë@example.com\n", "email_verified": True, "preferred_username": "50%\u2028off"}
    principal = Principal(sub=sub, client_id="c\r\n", scopes=("openid",), resource="https://mcp.example.com/mcp",
                          jti="j", family="f", expires_at=int(time.time()) + 60, claims=MappingProxyType({}))
    headers = identity_headers(principal, claims)
    for value in headers.values():
        assert all(0x20 <= ord(ch) < 0x7F for ch in value), value
    assert [unquote(value) for value in headers.values()][:4] == [
        sub, claims["email"], claims["preferred_username"], "c\r\n"]
