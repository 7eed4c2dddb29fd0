"""Scope strings (RFC 6749 §3.3): parsing, and reduction to what this facade may grant."""

from __future__ import annotations

import re

from proxy.errors import InvalidScope

SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")


def parse(scope: str | None) -> list[str]:
    words = list(dict.fromkeys((scope or "").split(" ")))
    words = [word for word in words if word]
    for word in words:
        if not SCOPE_TOKEN.match(word):
            raise InvalidScope("The scope contains a character RFC 6749 §3.3 does not allow.")
    return words


def grantable(requested: str | None, allowed: tuple[str, ...], default: tuple[str, ...]) -> str:
    """Unknown scopes are dropped (clients send fixed sets); a request of nothing we know is refused."""
    words = parse(requested)
    if not words:
        return " ".join(default)
    kept = [word for word in words if word in allowed]
    if not kept:
        raise InvalidScope("None of the requested scopes is offered by this server.")
    return " ".join(kept)
