"""Checking the facade's own access tokens, for /userinfo, /introspect and /revoke."""

from __future__ import annotations

import time
from typing import Any

from joserfc.errors import JoseError

from proxy.state import Services


async def live_access_token(s: Services, token: str) -> dict[str, Any] | None:
    """The claims of a live access token we issued, or None (forged, expired, revoked, other issuer)."""
    if token.count(".") != 2:
        return None
    try:
        header, claims = s.keyset.verify(token)
    except (JoseError, ValueError, TypeError):
        return None
    if header.get("typ") != "at+jwt" or claims.get("iss") != s.settings.issuer:
        return None
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= time.time():
        return None
    if not await s.store.access_token_live(str(claims.get("jti")), claims.get("sid"),
                                           s.clients.registration_of(claims.get("client_id"))):
        return None
    return claims
