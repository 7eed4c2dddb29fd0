"""Constant-time equality for secrets (CSRF tokens, cookie MACs, nonces, shared credentials).

`hmac.compare_digest` raises TypeError on a `str` with non-ASCII characters, so an attacker who sends
one would turn a comparison into a 500. Comparing the UTF-8 bytes keeps the time independent of the
contents and never raises.
"""

from __future__ import annotations

import hmac


def equals(presented: str | bytes, expected: str | bytes) -> bool:
    """True when the two are equal; the time taken does not depend on where they differ."""
    left = presented.encode("utf-8", "surrogatepass") if isinstance(presented, str) else presented
    right = expected.encode("utf-8", "surrogatepass") if isinstance(expected, str) else expected
    return hmac.compare_digest(left, right)
