"""Each IdP's quirks as data (plus at most two hooks), selected by ``PROXY_UPSTREAM_PROFILE``.

No endpoint branches on a provider's name: the upstream client reads these fields. Every value cites
the quirk it turns into data; the set-up per IdP is in the README's "Identity providers" section.

    field                   generic        clerk            google              auth0           github
    discovery               issuer         issuer (FAPI)    accounts.google.com issuer (tenant) none: endpoints
    issuer form             as given       no trailing /    as given            trailing /      (base URL)
    refresh tokens via      offline_access offline_access   access_type=offline offline_access  app setting
                            +prompt=consent                 +prompt=consent
    client auth             discovery      Basic            discovery           discovery       body (post)
    upstream DCR            yes            yes              no                  yes             no
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urljoin

from proxy.errors import AccessDenied
from proxy.settings import DEV_IDP_CLIENT_SECRET, DEV_IDP_MOUNT, Settings, SettingsError

TokenAuth = Literal["client_secret_basic", "client_secret_post", "auto"]
RefreshMode = Literal["rotating", "reuse", "none"]
OfflineAccess = Literal["scope", "scope+consent", "access_type", "none"]
IssuerForm = Literal["as_given", "trailing_slash", "no_trailing_slash"]

# Claims copied from the upstream identity into the facade's id_token and /userinfo.
STANDARD_CLAIMS = ("email", "email_verified", "name", "given_name", "family_name", "preferred_username",
                   "picture", "locale", "updated_at")
OIDC_DISCOVERY = "/.well-known/openid-configuration"
OAUTH_METADATA = "/.well-known/oauth-authorization-server"  # RFC 8414
# Facade scope -> upstream scopes for an OIDC upstream: the same names.
OIDC_SCOPES: Mapping[str, tuple[str, ...]] = MappingProxyType({"email": ("email",), "profile": ("profile",)})


# How each PROXY_UPSTREAM_OFFLINE_ACCESS value asks the IdP for a refresh token: scopes and authorize params.
# OIDC Core §11: offline_access is honoured only with prompt=consent (unless the IdP has other grounds).
OFFLINE_SCOPES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "scope": ("offline_access",), "scope+consent": ("offline_access",), "access_type": (), "none": ()})
OFFLINE_PARAMS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "scope": MappingProxyType({}), "scope+consent": MappingProxyType({"prompt": "consent"}),
    # Google issues a refresh token on consent only: prompt=consent makes every sign-in one.
    "access_type": MappingProxyType({"access_type": "offline", "prompt": "consent"}), "none": MappingProxyType({})})


def frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Endpoints:
    """Explicit endpoints for an IdP without discovery (GitHub); relative ones resolve against a base URL."""

    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str | None = None
    emails_endpoint: str | None = None
    revocation_endpoint: str | None = None

    def under(self, base: str) -> Endpoints:
        """The same paths on another host (GitHub Enterprise Server: PROXY_UPSTREAM_ISSUER is its base URL)."""
        root = base.rstrip("/") + "/"
        values = {name: urljoin(root, value.lstrip("/")) if value else None for name, value in vars(self).items()}
        return Endpoints(**values)

    def metadata(self) -> dict[str, str]:
        return {name: value for name, value in vars(self).items() if value}


@dataclass(frozen=True)
class Profile:
    """What the facade must know about one IdP beyond the operator's credentials."""

    name: str
    oidc: bool = True
    # -- discovery: where the endpoints come from -------------------------------------------------
    default_issuer: str | None = None  # None: PROXY_UPSTREAM_ISSUER is required
    issuer_form: IssuerForm = "as_given"  # iss is compared byte for byte (OIDC Discovery §4.3)
    discovery_paths: tuple[str, ...] = (OIDC_DISCOVERY,)  # tried in order; a 404 moves to the next
    endpoints: Endpoints | None = None  # no discovery: these, used when PROXY_UPSTREAM_ISSUER is unset
    endpoints_under_issuer: Endpoints | None = None  # ... and these, relative to it when it is set
    accepted_issuers: tuple[str, ...] = ()  # other spellings of the issuer seen in id_tokens
    # -- the authorize request ----------------------------------------------------------------------
    base_scopes: tuple[str, ...] = ("openid",)  # always requested upstream
    scope_map: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: OIDC_SCOPES)  # offered -> upstream
    extra_authorize_params: Mapping[str, str] = field(default_factory=dict)
    login_prompt: str = "login"  # what the IdP calls "sign in again" (the client sent prompt=login)
    # No PKCE switch: every upstream gets S256 (RFC 9700 §2.1.1); `check` flags one that does not list it.
    # -- refresh tokens: requested only when the facade offers offline_access -----------------------
    offline_access: OfflineAccess = "scope"  # how a refresh token is earned; PROXY_UPSTREAM_OFFLINE_ACCESS overrides
    offline_scopes_if_advertised: bool = False  # drop them when discovery's scopes_supported lacks them
    refresh: RefreshMode = "rotating"
    # -- the token endpoint --------------------------------------------------------------------------
    token_auth: TokenAuth = "auto"  # auto: client_secret_basic when discovery lists it (RFC 8414 default)
    token_accept_json: bool = False  # the answer must be JSON (we ask for it with Accept)
    # -- identity -------------------------------------------------------------------------------------
    extra_scopes: tuple[str, ...] = ("email", "profile")  # facade scopes this profile adds to PROXY_SCOPES
    claims: tuple[str, ...] = STANDARD_CLAIMS  # passed on into the facade's id_token and /userinfo
    subject_claim: str = "sub"  # user API only: which member is the stable subject
    claim_map: Mapping[str, str] = field(default_factory=dict)  # user API member -> OIDC claim name
    api_headers: Mapping[str, str] = field(default_factory=dict)  # sent with user API calls
    fresh_userinfo: bool = False  # /userinfo asks the upstream for fresh claims, not the sign-in snapshot
    # -- registration ---------------------------------------------------------------------------------
    supports_dcr: bool = False  # PROXY_UPSTREAM_DCR may mirror registrations to its registration_endpoint
    redirect_hint: str = "register the redirect URI with your identity provider"
    # -- hooks: authorize parameters from settings; a check of the upstream claims at the callback ------
    authorize_params: Callable[[Settings], dict[str, str]] | None = None
    check_claims: Callable[[dict[str, Any], Settings], None] | None = None

    def issuer(self, settings: Settings) -> str | None:
        """The upstream issuer in the exact form the IdP publishes it (Auth0 ends in '/', Clerk does not)."""
        issuer = settings.upstream_issuer or self.default_issuer
        if issuer is None or self.issuer_form == "as_given":
            return issuer
        bare = issuer.rstrip("/")
        return bare + "/" if self.issuer_form == "trailing_slash" else bare

    def explicit_endpoints(self, settings: Settings) -> Endpoints | None:
        """Endpoints of an IdP without discovery, moved under PROXY_UPSTREAM_ISSUER when it is set."""
        if settings.upstream_issuer and self.endpoints_under_issuer is not None:
            return self.endpoints_under_issuer.under(settings.upstream_issuer)
        return self.endpoints

    def offered_scopes(self, settings: Settings) -> tuple[str, ...]:
        """The scopes the facade lets clients ask for: PROXY_SCOPES plus this profile's identity scopes."""
        return tuple(dict.fromkeys((*settings.scopes, *self.extra_scopes)))

    def wants_refresh(self, settings: Settings) -> bool:
        return "offline_access" in self.offered_scopes(settings)

    def offline_mode(self, settings: Settings) -> OfflineAccess:
        """How this deployment earns upstream refresh tokens: the operator's setting, else the profile's."""
        return settings.upstream_offline_access or self.offline_access

    def offline_scopes(self, settings: Settings) -> tuple[str, ...]:
        return OFFLINE_SCOPES[self.offline_mode(settings)]

    def expects_refresh_token(self, settings: Settings, advertised: list[str] | None = None) -> bool:
        """A sign-in should bring an upstream refresh token: the facade asks for one in a way it names (and
        a generic IdP lists the scope that asks, when it lists scopes at all)."""
        if not self.wants_refresh(settings) or self.offline_mode(settings) == "none":
            return False
        return not (self.offline_scopes_if_advertised and advertised is not None
                    and any(word not in advertised for word in self.offline_scopes(settings)))

    def upstream_scopes(self, settings: Settings, advertised: list[str] | None = None) -> tuple[str, ...]:
        """What the facade asks the IdP for: base scopes, the mapping of the offered facade scopes, what
        earns a refresh token, then PROXY_UPSTREAM_SCOPES. Facade-only scopes never go upstream."""
        offered = self.offered_scopes(settings)
        words = list(self.base_scopes)
        for facade_scope, upstream in self.scope_map.items():
            if facade_scope in offered:
                words += upstream
        if self.expects_refresh_token(settings, advertised):
            words += self.offline_scopes(settings)
        words += settings.upstream_scopes
        return tuple(dict.fromkeys(words))

    def authorize_extras(self, settings: Settings, advertised: list[str] | None = None) -> dict[str, str]:
        """Authorize parameters beyond RFC 6749's: the profile's constants, then its settings hook."""
        params = dict(self.extra_authorize_params)
        if self.expects_refresh_token(settings, advertised):
            params.update(OFFLINE_PARAMS[self.offline_mode(settings)])
        if self.authorize_params is not None:
            params.update(self.authorize_params(settings))
        return params


# -- hooks ---------------------------------------------------------------------------------------------
def _auth0_params(settings: Settings) -> dict[str, str]:
    """`audience` makes Auth0 issue a JWT access token for that API (and is needed for its offline access)."""
    return {"audience": settings.upstream_audience} if settings.upstream_audience else {}


def _google_params(settings: Settings) -> dict[str, str]:
    return {"hd": settings.upstream_hosted_domain} if settings.upstream_hosted_domain else {}


def _google_hd(claims: dict[str, Any], settings: Settings) -> None:
    """The `hd` authorize parameter is only a UI hint; the id_token claim is what must be enforced."""
    wanted = settings.upstream_hosted_domain
    if wanted and claims.get("hd") != wanted:
        raise AccessDenied("This account is not in the allowed Google Workspace domain.",
                           detail=f"hd={claims.get('hd')!r}, want {wanted!r}")


# -- the profiles ----------------------------------------------------------------------------------------
GENERIC = Profile(
    "generic",
    offline_access="scope+consent",  # OIDC Core §11, as oidc-provider, Keycloak and Okta implement it
    offline_scopes_if_advertised=True,
    supports_dcr=True,
    claims=(*STANDARD_CLAIMS, "groups", "roles"),  # groups for PROXY_POLICY_FILE, never released to clients
    redirect_hint="add it to the client's allowed redirect URIs at your OpenID provider",
)
CLERK = Profile(
    "clerk",
    issuer_form="no_trailing_slash",  # the Frontend API URL; id_token iss matches it exactly
    # Clerk documents RFC 8414 metadata; its dashboard "Discovery URL" is the OIDC one. Either works.
    discovery_paths=(OIDC_DISCOVERY, OAUTH_METADATA),
    token_auth="client_secret_basic",  # the documented metadata lists basic and none, not post
    supports_dcr=True,
    claims=(*STANDARD_CLAIMS, "org_id", "org_slug", "groups", "roles"),  # organisations, for PROXY_POLICY_FILE
    redirect_hint="Clerk dashboard > Configure > OAuth applications > your app > Redirect URIs",
)
GOOGLE = Profile(
    "google",
    default_issuer="https://accounts.google.com",
    accepted_issuers=("accounts.google.com",),  # legacy id_tokens carry iss without the scheme
    offline_access="access_type",  # no offline_access scope; access_type=offline, and a refresh token on consent
    login_prompt="select_account",  # Google knows none|consent|select_account, not login
    refresh="reuse",  # a refresh answer carries no new refresh token
    claims=(*STANDARD_CLAIMS, "hd"),
    authorize_params=_google_params,
    check_claims=_google_hd,
    redirect_hint="Google Cloud console > APIs & Services > Credentials > OAuth client > Authorized redirect URIs",
)
AUTH0 = Profile(
    "auth0",
    issuer_form="trailing_slash",  # https://TENANT.auth0.com/ exactly as Auth0 publishes it
    authorize_params=_auth0_params,
    supports_dcr=True,  # /oidc/register, when the tenant enables dynamic registration
    claims=(*STANDARD_CLAIMS, "groups", "roles"),  # set by an Auth0 Action, for PROXY_POLICY_FILE
    redirect_hint="Auth0 dashboard > Applications > your app > Settings > Allowed Callback URLs",
)
GITHUB = Profile(
    "github",
    oidc=False,  # no id_token, no discovery, no JWKS: identity from the REST API
    default_issuer="https://github.com",
    endpoints=Endpoints(
        authorization_endpoint="https://github.com/login/oauth/authorize",
        token_endpoint="https://github.com/login/oauth/access_token",
        userinfo_endpoint="https://api.github.com/user",
        emails_endpoint="https://api.github.com/user/emails",
    ),
    endpoints_under_issuer=Endpoints(  # GitHub Enterprise Server: PROXY_UPSTREAM_ISSUER=https://HOST
        authorization_endpoint="/login/oauth/authorize",
        token_endpoint="/login/oauth/access_token",
        userinfo_endpoint="/api/v3/user",
        emails_endpoint="/api/v3/user/emails",
    ),
    base_scopes=(),
    scope_map=frozen({"profile": ("read:user",), "email": ("user:email",)}),
    offline_access="none",  # expiring tokens (and refresh tokens) are a setting of the GitHub app
    login_prompt="select_account",
    refresh="rotating",  # strict: a used refresh token is dead
    token_auth="client_secret_post",  # Basic is not documented for this endpoint
    token_accept_json=True,  # the default answer is form-encoded, errors included (with HTTP 200)
    subject_claim="id",  # numeric and stable; login can be renamed
    claim_map=frozen({"login": "preferred_username", "name": "name", "email": "email", "avatar_url": "picture"}),
    api_headers=frozen({"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
                        "User-Agent": "oauth-facade"}),
    redirect_hint="GitHub > Settings > Developer settings > OAuth Apps > your app > Authorization callback URL",
)

PROFILES: dict[str, Profile] = {p.name: p for p in (GENERIC, CLERK, GOOGLE, AUTH0, GITHUB)}


def profile_for(settings: Settings) -> Profile:
    """The profile PROXY_UPSTREAM_PROFILE names; settings hold the name only, this module the IdPs."""
    try:
        return PROFILES[settings.upstream_profile]
    except KeyError:
        raise SettingsError(f"PROXY_UPSTREAM_PROFILE: {settings.upstream_profile!r} is not a profile "
                            f"(one of {', '.join(PROFILES)})") from None


# -- what the settings mean once the profile is known ------------------------------------------------------
def uses_dev_idp(settings: Settings) -> bool:
    """True when no upstream is configured (Google and GitHub need no issuer, so a client id counts)."""
    return not settings.upstream_issuer and not (profile_for(settings).default_issuer and settings.upstream_client_id)


def upstream_issuer(settings: Settings) -> str:
    """The upstream's issuer as the IdP spells it, or the mounted development IdP's."""
    if uses_dev_idp(settings):
        return settings.issuer + DEV_IDP_MOUNT
    return profile_for(settings).issuer(settings) or settings.issuer + DEV_IDP_MOUNT


def upstream_client_secret(settings: Settings) -> str | None:
    if settings.upstream_client_secret is not None:
        return settings.upstream_client_secret.get_secret_value()
    return DEV_IDP_CLIENT_SECRET if uses_dev_idp(settings) else None


def coherent(settings: Settings) -> Settings:
    """The profile-dependent rules, as one SettingsError line; every entry point runs them (CLI, create_app)."""
    profile = profile_for(settings)
    dev_idp = uses_dev_idp(settings)
    if dev_idp and (profile is not GENERIC or settings.upstream_dcr):  # only generic OIDC has a stand-in
        needed = "PROXY_UPSTREAM_CLIENT_ID" if profile.default_issuer else "PROXY_UPSTREAM_ISSUER"
        raise SettingsError(f"configuration: PROXY_UPSTREAM_PROFILE={profile.name} needs {needed} "
                            f"(see config/{profile.name}.env)")
    if settings.upstream_dcr and not profile.supports_dcr:
        raise SettingsError(f"configuration: PROXY_UPSTREAM_DCR=true: the {profile.name} profile's IdP has no "
                            "client registration")
    if settings.env == "production" and dev_idp:
        raise SettingsError("configuration: PROXY_ENV=production needs a real upstream: set PROXY_UPSTREAM_ISSUER "
                            "(the bundled development IdP refuses to run in production)")
    return settings

