"""Each IdP's quirks as data (plus at most two hooks), selected by ``PROXY_UPSTREAM_PROFILE``.

No endpoint branches on a provider's name: the upstream client reads these fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from proxy.errors import AccessDenied
from proxy.settings import Settings

TokenAuth = Literal["client_secret_basic", "client_secret_post", "auto"]
RefreshMode = Literal["rotating", "reuse", "none"]

# Claims copied from the upstream identity into the facade's id_token and /userinfo.
STANDARD_CLAIMS = ("email", "email_verified", "name", "given_name", "family_name", "preferred_username",
                   "picture", "locale", "updated_at")


@dataclass(frozen=True)
class Endpoints:
    """Explicit endpoints for an IdP without discovery (GitHub)."""

    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str | None = None
    revocation_endpoint: str | None = None


@dataclass(frozen=True)
class Profile:
    name: str
    oidc: bool = True
    default_issuer: str | None = None
    endpoints: Endpoints | None = None
    # Upstream scopes always requested, and the upstream scope that earns a refresh token.
    upstream_scopes: tuple[str, ...] = ("openid", "email", "profile")
    offline_scope: str | None = "offline_access"
    # Facade scopes this profile adds to PROXY_SCOPES (clients may ask for them).
    extra_scopes: tuple[str, ...] = ("email", "profile")
    extra_authorize_params: Mapping[str, str] = field(default_factory=dict)
    token_auth: TokenAuth = "auto"
    claims: tuple[str, ...] = STANDARD_CLAIMS
    accepted_issuers: tuple[str, ...] = ()
    refresh: RefreshMode = "rotating"
    supports_dcr: bool = False
    token_accept_json: bool = False
    # /userinfo asks the upstream userinfo endpoint for fresh claims instead of the sign-in snapshot.
    fresh_userinfo: bool = False
    # Hooks: extra authorize parameters from settings; a check of the upstream claims at the callback.
    authorize_params: Callable[[Settings], dict[str, str]] | None = None
    check_claims: Callable[[dict[str, Any], Settings], None] | None = None


def _auth0_params(settings: Settings) -> dict[str, str]:
    return {"audience": settings.upstream_audience} if settings.upstream_audience else {}


def _google_params(settings: Settings) -> dict[str, str]:
    return {"hd": settings.upstream_hosted_domain} if settings.upstream_hosted_domain else {}


def _google_hd(claims: dict[str, Any], settings: Settings) -> None:
    """The `hd` authorize parameter is only a UI hint; the id_token claim is what must be enforced."""
    wanted = settings.upstream_hosted_domain
    if wanted and claims.get("hd") != wanted:
        raise AccessDenied("This account is not in the allowed Google Workspace domain.",
                           detail=f"hd={claims.get('hd')!r}, want {wanted!r}")


GENERIC = Profile("generic")
CLERK = Profile("clerk", token_auth="client_secret_basic", supports_dcr=True)
GOOGLE = Profile(
    "google",
    default_issuer="https://accounts.google.com",
    offline_scope=None,
    extra_authorize_params={"access_type": "offline", "prompt": "consent"},
    accepted_issuers=("accounts.google.com",),
    refresh="reuse",
    authorize_params=_google_params,
    check_claims=_google_hd,
)
AUTH0 = Profile("auth0", authorize_params=_auth0_params)
GITHUB = Profile(
    "github",
    oidc=False,
    endpoints=Endpoints(
        authorization_endpoint="https://github.com/login/oauth/authorize",
        token_endpoint="https://github.com/login/oauth/access_token",
        userinfo_endpoint="https://api.github.com/user",
    ),
    upstream_scopes=("read:user", "user:email"),
    offline_scope=None,
    token_auth="client_secret_post",
    refresh="none",
    token_accept_json=True,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (GENERIC, CLERK, GOOGLE, AUTH0, GITHUB)}


def profile_for(settings: Settings) -> Profile:
    return PROFILES[settings.upstream_profile]
