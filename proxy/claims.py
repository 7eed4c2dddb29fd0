"""Which identity claims each scope releases (OIDC Core §5.4), for the id_token and /userinfo (SEC-75).

The upstream is asked for every identity scope the facade offers, so the sign-in's snapshot of the user
holds more than any one client may see; what a client sees is decided here, by the scopes of its grant.
A claim no scope names (an IdP extra the profile passes on) is released with the scope it belongs to
below, or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

OPENID = "openid"
EMAIL_CLAIMS = ("email", "email_verified", "hd")  # hd: Google's hosted domain, a property of the address
PROFILE_CLAIMS = ("name", "family_name", "given_name", "middle_name", "nickname", "preferred_username",
                  "profile", "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at")
RELEASED_BY: Mapping[str, tuple[str, ...]] = MappingProxyType({"email": EMAIL_CLAIMS, "profile": PROFILE_CLAIMS})


#: client_credentials tokens' `sub` namespace (`client:<client_id>`): no user's can fall in it, since a
#: sign-in whose upstream `sub` does is refused, so a backend keying data on `sub` never mixes the two.
MACHINE_SUBJECT_PREFIX = "client:"


def machine_subject(client_id: str) -> str:
    return MACHINE_SUBJECT_PREFIX + client_id


def is_machine_subject(sub: str) -> bool:
    return sub.startswith(MACHINE_SUBJECT_PREFIX)


def identity_claims(claims: Mapping[str, Any], scope: str) -> dict[str, Any]:
    """The subset of the user's `claims` that `scope` (space-separated) releases; `sub` is never here."""
    words = scope.split()
    allowed = {name for word in words for name in RELEASED_BY.get(word, ())}
    return {name: value for name, value in claims.items() if name in allowed}
