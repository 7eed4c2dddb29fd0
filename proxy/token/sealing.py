"""Keep a rotated refresh token readable only by holders of its predecessor.

Within the grace window a replay of the old token must get the *same* new token (concurrent Claude
Code processes share one credential). The store cannot keep the new token in clear, so it keeps it
XORed with HMAC-SHA256(old token): a one-time pad only the old token's holder can reproduce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_LABEL = b"oauth-facade refresh grace v1"
SECRET_BYTES = 32


def _pad(token: str) -> bytes:
    return hmac.new(token.encode(), _LABEL, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def new_refresh_token(family: str) -> tuple[str, str]:
    """(token, raw secret as base64url) for a family."""
    secret = _b64(secrets.token_bytes(SECRET_BYTES))
    return f"{family}.{secret}", secret


def seal(secret_b64: str, old_token: str) -> str:
    raw = base64.urlsafe_b64decode(secret_b64 + "=")
    return _b64(bytes(a ^ b for a, b in zip(raw, _pad(old_token), strict=True)))


def unseal(sealed: str, old_token: str, family: str) -> str:
    raw = base64.urlsafe_b64decode(sealed + "=")
    return f"{family}.{_b64(bytes(a ^ b for a, b in zip(raw, _pad(old_token), strict=True)))}"
