"""Whether a sign-in brought the upstream refresh token the profile asked for.

Without one the facade can neither refresh the upstream token nor revoke the upstream grant when it ends
a family; nothing else fails, so the gap would stay silent. It is said once per process in the log (with
what to change), counted on every such sign-in, and explained by `oauth-facade check`.
"""

from __future__ import annotations

from typing import Any

from proxy.log import get_logger
from proxy.metrics import UPSTREAM_NO_REFRESH_TOKEN
from proxy.settings import Settings
from proxy.upstream.profiles import Profile

log = get_logger()
_said = False

HINTS = {
    "scope": "an IdP following OIDC Core §11 honours offline_access only with prompt=consent: "
             "set PROXY_UPSTREAM_OFFLINE_ACCESS=scope+consent, or allow refresh tokens for the facade's client",
    "scope+consent": "allow the refresh_token grant (and offline_access) for the facade's client at the IdP",
    "access_type": "Google issues a refresh token on consent only; check the OAuth client allows offline access",
}


def advice(mode: str) -> str:
    return HINTS.get(mode, "")


def expect_refresh_token(profile: Profile, settings: Settings, tokens: dict[str, Any],
                         advertised: list[str] | None = None) -> bool:
    """True when the answer is as expected; otherwise count it, and say so once."""
    global _said
    if not profile.expects_refresh_token(settings, advertised) or tokens.get("refresh_token"):
        return True
    UPSTREAM_NO_REFRESH_TOKEN.inc()
    if not _said:
        _said = True
        mode = profile.offline_mode(settings)
        log.warning("upstream.no_refresh_token", offline_access=mode, hint=advice(mode),
                    consequence="the upstream token cannot be refreshed, nor the upstream grant revoked")
    return False


def reset() -> None:
    """Say it again on the next occurrence (tests; a reload)."""
    global _said
    _said = False
