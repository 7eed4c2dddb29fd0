"""Client assertions as a private_key_jwt client makes them (RFC 7523 §2.2), for the tests."""

from __future__ import annotations

import secrets
import time
from typing import Any

from joserfc import jwt

from proxy.token.assertions import CLIENT_ASSERTION_TYPE


def client_assertion(client_id: str, aud: str, key: Any, alg: str = "RS256", **overrides: Any) -> str:
    """A fresh assertion (iss = sub = client_id, a minute's life, a new jti); `overrides` None removes."""
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60,
              "jti": secrets.token_urlsafe(12), **overrides}
    return jwt.encode({"alg": alg, "kid": key.kid}, {k: v for k, v in claims.items() if v is not None}, key,
                      algorithms=[alg])


def client_assertion_form(client_id: str, aud: str, key: Any, alg: str = "RS256", **overrides: Any) -> dict[str, str]:
    """The form members that authenticate `client_id` with a fresh assertion."""
    return {"client_id": client_id, "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": client_assertion(client_id, aud, key, alg, **overrides)}
