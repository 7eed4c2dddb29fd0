"""Upstream provider profiles: each IdP's quirks as data, and a whole flow against a fake of each IdP.

Every flow test checks both sides: what the facade sent upstream (recorded by the fake) and what the
MCP client received (checked as a strict client checks it).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from proxy.app import create_app
from proxy.settings import Settings, SettingsError, load_settings
from proxy.state import SERVICES, Services
from proxy.upstream import PROFILES, profile_for
from proxy.upstream.credentials import MIRROR_FIELD, UpstreamClient
from proxy.upstream.profiles import GENERIC, coherent, upstream_issuer, uses_dev_idp
from proxy.upstream.userapi import claims_from_user, primary_verified_email
from tests.conftest import free_port
from tests.helpers import Client, query_of
from tests.upstreams import FakeGitHub, FakeOidc, GitHubQuirks, OidcQuirks, create_github_app, create_oidc_app
from tests.upstreams.oidc import OAUTH_METADATA

CLIENT_ID, CLIENT_SECRET = "facade-at-idp", "s3cret/+="
ROOT = Path(__file__).resolve().parent.parent


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class ProfileFacade:
    """A facade in front of one fake IdP; quacks like conftest.Facade for helpers.Client."""

    url: str
    settings: Settings
    server: TestServer
    idp_url: str
    http: aiohttp.ClientSession

    @property
    def services(self) -> Services:
        return self.server.app[SERVICES]

    def client(self) -> Client:
        return Client(self)  # type: ignore[arg-type]


Start = Callable[..., Awaitable[ProfileFacade]]


@pytest.fixture
async def start(redis_client: Any, aiohttp_server: Any) -> AsyncIterator[Start]:
    """Start a fake IdP app, then a facade with PROXY_UPSTREAM_PROFILE=`profile` pointed at it.

    `issuer` maps the fake's base URL to the PROXY_UPSTREAM_ISSUER the operator would type; an override
    of None leaves a setting unset."""
    sessions: list[aiohttp.ClientSession] = []

    async def factory(profile: str, fake: FakeOidc | FakeGitHub, *, issuer: Callable[[str], str] = str,
                      **overrides: Any) -> ProfileFacade:
        app = create_github_app(fake) if isinstance(fake, FakeGitHub) else create_oidc_app(fake)
        upstream = await aiohttp_server(app)
        fake.base_url = str(upstream.make_url("")).rstrip("/")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        if isinstance(fake, FakeOidc):
            fake.add_client(CLIENT_ID, CLIENT_SECRET, url + "/callback")
        else:
            fake.redirect_uri = url + "/callback"
        values: dict[str, Any] = {
            "issuer": url, "port": port, "upstream_profile": profile, "upstream_issuer": issuer(fake.base_url),
            "upstream_client_id": CLIENT_ID, "upstream_client_secret": CLIENT_SECRET, "consent": False,
            "rate_limits": False}
        values.update(overrides)
        facade_settings = settings(**{name: value for name, value in values.items() if value is not None})
        server = await aiohttp_server(create_app(facade_settings, redis=redis_client), port=port)
        http = aiohttp.ClientSession()
        sessions.append(http)
        return ProfileFacade(url, facade_settings, server, fake.base_url, http)

    yield factory
    for session in sessions:
        await session.close()


async def signed_in(facade: ProfileFacade, **extra: str | None) -> tuple[Client, dict[str, Any], dict[str, Any]]:
    """Register, authorize, redeem: (client, token response, the facade's verified id_token claims). The
    client asks for the identity scopes, so the id_token carries what the IdP said (OIDC Core §5.4)."""
    client = facade.client()
    extra.setdefault("scope", "openid email profile offline_access")
    body = await client.signed_in(**extra)
    auth = body["_auth"]
    claims = await client.verify_id_token(body["id_token"], nonce=auth.nonce, access_token=body["access_token"])
    return client, body, claims


async def failed_sign_in(facade: ProfileFacade, **extra: str | None) -> dict[str, str]:
    """The query the client's redirect_uri receives when the sign-in fails at the callback."""
    client = facade.client()
    await client.register()
    auth = await client.authorize(**extra)
    assert auth.location.startswith(client.redirect_uri + "?"), auth.location
    return auth.params


def google_fake(**claims: Any) -> FakeOidc:
    """Google: legacy `iss` without scheme, refresh tokens for access_type=offline, never rotated."""
    base = {"sub": "110169484474386276334", "email": "ada@example.com", "email_verified": "true",
            "name": "Ada", "hd": "example.com"}
    return FakeOidc(OidcQuirks(token_iss="accounts.google.com", offline="access_type", rotate_refresh=False,
                               scopes_supported=("openid", "email", "profile"),
                               auth_methods=("client_secret_post", "client_secret_basic"),
                               claims={**base, **claims}))


def clerk_fake(**quirks: Any) -> FakeOidc:
    """Clerk: RFC 8414 metadata only, Basic or public clients, and (when on) DCR that hands out secrets."""
    values: dict[str, Any] = {"discovery_paths": (OAUTH_METADATA,), "auth_methods": ("client_secret_basic", "none"),
                              "scopes_supported": ("openid", "email", "profile", "offline_access",
                                                   "public_metadata")}
    values.update(quirks)
    return FakeOidc(OidcQuirks(**values))


# -- the profiles as data -----------------------------------------------------------------------------
@pytest.mark.parametrize(("profile", "scope"), [
    ("generic", "openid email profile offline_access"),
    ("clerk", "openid email profile offline_access"),
    ("auth0", "openid email profile offline_access"),
    ("google", "openid email profile"),  # refresh tokens come from access_type=offline, not a scope
    ("github", "read:user user:email"),  # GitHub's names; no openid, it is not OIDC
])
def test_facade_scopes_map_to_each_idps_upstream_scopes(profile: str, scope: str) -> None:
    """The offered facade scopes (PROXY_SCOPES + email profile) map to the IdP's own scope names."""
    s = settings(upstream_profile=profile, upstream_issuer="https://idp.example", upstream_client_id="x")
    assert " ".join(PROFILES[profile].upstream_scopes(s)) == scope


def test_facade_only_scopes_never_go_upstream_and_extra_upstream_scopes_do() -> None:
    """Scopes the facade defines (mcp:tools) stay local; the profile's and PROXY_UPSTREAM_SCOPES' scopes are
    what go upstream."""
    s = settings(upstream_profile="clerk", upstream_issuer="https://c.example", upstream_client_id="x",
                 scopes="openid mcp:tools", upstream_scopes="public_metadata")
    assert PROFILES["clerk"].upstream_scopes(s) == ("openid", "email", "profile", "public_metadata")


def test_without_offline_access_offered_no_refresh_token_is_asked_for() -> None:
    """Google's offline parameters, like offline_access elsewhere, follow the facade's offline_access."""
    s = settings(upstream_profile="google", upstream_client_id="x", scopes="openid")
    assert "access_type" not in PROFILES["google"].authorize_extras(s)
    s = settings(upstream_profile="google", upstream_client_id="x")
    assert PROFILES["google"].authorize_extras(s) == {"access_type": "offline", "prompt": "consent"}


@pytest.mark.parametrize(("profile", "typed", "issuer"), [
    ("auth0", "https://tenant.eu.auth0.com", "https://tenant.eu.auth0.com/"),
    ("auth0", "https://tenant.eu.auth0.com/", "https://tenant.eu.auth0.com/"),
    ("clerk", "https://clerk.example.com/", "https://clerk.example.com"),
    ("generic", "https://idp.example/realms/a/", "https://idp.example/realms/a/"),
])
def test_issuer_takes_the_exact_form_the_idp_publishes(profile: str, typed: str, issuer: str) -> None:
    """OIDC Discovery §4.3 compares iss byte for byte: Auth0's ends in '/', Clerk's does not."""
    s = settings(upstream_profile=profile, upstream_issuer=typed, upstream_client_id="x")
    assert PROFILES[profile].issuer(s) == issuer == upstream_issuer(s)


def test_google_and_github_need_only_credentials() -> None:
    """'Name the IdP and paste its credentials': no issuer to type for Google or GitHub."""
    google = settings(upstream_profile="google", upstream_client_id="x.apps.googleusercontent.com")
    assert not uses_dev_idp(google) and upstream_issuer(google) == "https://accounts.google.com"
    github = settings(upstream_profile="github", upstream_client_id="Iv1.abc")
    assert not uses_dev_idp(github)
    endpoints = PROFILES["github"].explicit_endpoints(github)
    assert endpoints is not None
    assert endpoints.authorization_endpoint == "https://github.com/login/oauth/authorize"
    assert endpoints.token_endpoint == "https://github.com/login/oauth/access_token"
    assert endpoints.userinfo_endpoint == "https://api.github.com/user"
    assert endpoints.emails_endpoint == "https://api.github.com/user/emails"


def test_github_enterprise_endpoints_live_under_the_issuer_setting() -> None:
    """GitHub Enterprise: PROXY_UPSTREAM_ISSUER moves the authorize, user and emails endpoints under that
    host."""
    s = settings(upstream_profile="github", upstream_client_id="x", upstream_issuer="https://ghe.example.com/")
    endpoints = PROFILES["github"].explicit_endpoints(s)
    assert endpoints is not None
    assert endpoints.authorization_endpoint == "https://ghe.example.com/login/oauth/authorize"
    assert endpoints.userinfo_endpoint == "https://ghe.example.com/api/v3/user"
    assert endpoints.emails_endpoint == "https://ghe.example.com/api/v3/user/emails"


def test_only_generic_falls_back_to_the_dev_idp() -> None:
    """The dev IdP stands in for a generic OIDC provider only; a named IdP without credentials is a mistake."""
    s = settings()
    assert uses_dev_idp(s) and profile_for(s) is GENERIC


@pytest.mark.parametrize(("values", "message"), [
    ({"upstream_profile": "google", "upstream_client_id": "x", "upstream_dcr": True}, "no client registration"),
    ({"upstream_profile": "clerk", "upstream_dcr": True}, "PROXY_UPSTREAM_ISSUER"),
    ({"upstream_profile": "clerk", "upstream_client_id": "x"}, "clerk needs PROXY_UPSTREAM_ISSUER"),
    ({"upstream_profile": "auth0"}, "auth0 needs PROXY_UPSTREAM_ISSUER"),
    ({"upstream_profile": "github"}, "github needs PROXY_UPSTREAM_CLIENT_ID"),
    ({"upstream_profile": "google"}, "google needs PROXY_UPSTREAM_CLIENT_ID"),
    ({"upstream_dcr": True}, "generic needs PROXY_UPSTREAM_ISSUER"),
    ({"upstream_profile": "auth0", "upstream_issuer": "https://t.auth0.com/"}, "PROXY_UPSTREAM_CLIENT_ID"),
])
def test_incoherent_profile_settings_are_refused_in_one_line(values: dict[str, Any], message: str) -> None:
    """A profile missing what it needs (issuer, client id) or asked for DCR it cannot do is one SettingsError
    line naming the setting."""
    with pytest.raises(SettingsError, match=message):
        coherent(load_settings(**values))


def test_clerk_dcr_needs_no_static_client() -> None:
    """Clerk with DCR needs no PROXY_UPSTREAM_CLIENT_ID and does not fall back to the dev IdP."""
    s = settings(upstream_profile="clerk", upstream_issuer="https://c.clerk.accounts.dev", upstream_dcr=True)
    assert not uses_dev_idp(s)


def test_no_module_outside_the_profiles_branches_on_a_provider_name() -> None:
    """Issue 6: a profile is data; endpoint modules read its fields and never ask which IdP it is."""
    names = re.compile(r"""["'](clerk|google|auth0|github)["']|profile\.name\s*==|upstream_profile\s*==""")
    allowed = {ROOT / "proxy/upstream/profiles.py", ROOT / "proxy/settings.py"}  # settings: the name Literal
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "proxy").rglob("*.py")
                 if path not in allowed and names.search(path.read_text())]
    assert offenders == []


def test_github_user_becomes_oidc_claims_with_a_string_subject() -> None:
    """GitHub's user object maps to OIDC claims: the numeric id becomes a string sub, nulls are dropped."""
    profile = PROFILES["github"]
    user = {"id": 1, "login": "octocat", "name": None, "email": None, "avatar_url": "https://a/1"}
    assert claims_from_user(user, profile.subject_claim, profile.claim_map) == {
        "sub": "1", "preferred_username": "octocat", "picture": "https://a/1"}


@pytest.mark.parametrize(("emails", "chosen"), [
    ([{"email": "a@x", "primary": True, "verified": True}], "a@x"),
    ([{"email": "a@x", "primary": True, "verified": False}, {"email": "b@x", "primary": False, "verified": True}],
     None),
    ([], None),
    ({"message": "Not Found"}, None),
])
def test_only_the_primary_verified_github_email_is_used(emails: Any, chosen: str | None) -> None:
    """Only an email that is both primary and verified becomes the email claim; anything else (or an error
    body) gives none."""
    assert primary_verified_email(emails) == chosen


def test_upstream_credentials_never_show_their_secret() -> None:
    """A dynamically registered upstream client keeps its issued secret, and its repr never shows it."""
    client = UpstreamClient.from_registration({"client_id": "dyn", "client_secret": "hush",
                                               "token_endpoint_auth_method": "none"})
    assert client == UpstreamClient("dyn", "hush", None)  # a secret it issued is used; the method is ours
    assert "hush" not in repr(client)
    assert UpstreamClient.from_registration({"client_id": "pub"}).client_secret is None


# -- generic OIDC --------------------------------------------------------------------------------------
async def test_generic_flow_reads_everything_from_discovery(start: Start) -> None:
    """Client auth from token_endpoint_auth_methods_supported; offline_access only when advertised."""
    fake = FakeOidc(OidcQuirks(auth_methods=("client_secret_post",), scopes_supported=("openid", "email")))
    facade = await start("generic", fake)
    _, body, claims = await signed_in(facade)
    sent = fake.authorize_requests[-1]
    assert sent["client_id"] == CLIENT_ID
    assert sent["scope"] == "openid email profile"  # the IdP does not list offline_access
    assert sent["code_challenge_method"] == "S256" and sent["nonce"]
    assert fake.token_requests[-1]["auth"] == "client_secret_post"
    assert claims["sub"] == "user_2abc" and claims["email"] == "ada@example.com"
    assert body["refresh_token"]  # the facade's own refresh token, whatever the IdP does


async def test_generic_discovery_issuer_must_match_exactly(start: Start) -> None:
    """OIDC Discovery §4.3: a document for another issuer is unusable; the client hears server_error."""
    fake = FakeOidc()
    facade = await start("generic", fake, issuer=lambda base: base + "/")
    params = await failed_sign_in(facade)
    assert params["error"] == "server_error"


# -- Clerk ----------------------------------------------------------------------------------------------
async def test_clerk_flow_with_one_static_client(start: Start) -> None:
    """FAPI issuer without '/', RFC 8414 metadata, offline_access for refresh tokens, Basic auth."""
    fake = clerk_fake()
    facade = await start("clerk", fake, issuer=lambda base: base + "/")  # the operator pasted a trailing '/'
    _, _, claims = await signed_in(facade)
    sent = fake.authorize_requests[-1]
    assert sent["scope"].split() == ["openid", "email", "profile", "offline_access"]
    assert sent["client_id"] == CLIENT_ID
    exchange = fake.token_requests[-1]
    assert (exchange["auth"], exchange["client_id"]) == ("client_secret_basic", CLIENT_ID)
    assert claims["sub"] == "user_2abc"
    assert any(fake.refresh_tokens.values())  # Clerk granted a refresh token for offline_access


async def test_clerk_dcr_mirrors_each_registration_and_keeps_the_secret(start: Start) -> None:
    """Issue 6.3: each /register becomes a public client at Clerk with the facade's scopes; Clerk answers
    with a client_secret anyway, which stays in the server-side record and never reaches the client."""
    fake = clerk_fake(registration=True, secret_for_public=True, access_token_ttl_s=1)
    facade = await start("clerk", fake, upstream_dcr=True, upstream_client_id=None, upstream_client_secret=None)

    client = facade.client()
    async with facade.http.post(facade.url + "/register", json={
            "redirect_uris": [client.redirect_uri], "client_name": "Claude Code",
            "scope": "openid offline_access"}) as response:
        assert response.status == 201
        raw = await response.text()
    document = json.loads(raw)
    client.client_id = document["client_id"]
    mirrored = fake.registrations[-1]
    assert mirrored == {"client_name": "Claude Code", "redirect_uris": [facade.url + "/callback"],
                        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
                        "token_endpoint_auth_method": "none", "scope": "openid email profile offline_access"}
    upstream_id = next(cid for cid in fake.clients if cid.startswith("dyn_"))
    upstream_secret = fake.clients[upstream_id]["secret"]
    assert upstream_secret and upstream_secret not in raw and upstream_id not in raw
    assert "client_secret" not in document and MIRROR_FIELD not in document
    assert document["token_endpoint_auth_method"] == "none"
    record = await facade.services.store.load_client(client.client_id)
    assert record is not None
    assert record[MIRROR_FIELD] == {"client_id": upstream_id, "client_secret": upstream_secret}

    body = await client.signed_in()
    assert fake.authorize_requests[-1]["client_id"] == upstream_id
    exchange = fake.token_requests[-1]
    assert (exchange["auth"], exchange["client_id"]) == ("client_secret_basic", upstream_id)
    claims = await client.verify_id_token(body["id_token"], nonce=body["_auth"].nonce,
                                          access_token=body["access_token"])
    assert claims["sub"] == "user_2abc"  # Clerk's id_token (aud = the mirrored client) was accepted

    status, refreshed = await client.refresh(body["refresh_token"])  # upstream token expired: refresh it
    assert status == 200, refreshed
    upstream_refresh = fake.token_requests[-1]
    assert upstream_refresh["form"]["grant_type"] == "refresh_token"
    assert (upstream_refresh["auth"], upstream_refresh["client_id"]) == ("client_secret_basic", upstream_id)

    other = facade.client()
    await other.register()
    other_record = await facade.services.store.load_client(other.client_id)
    assert other_record is not None
    assert other_record[MIRROR_FIELD]["client_id"] not in (upstream_id, CLIENT_ID)


async def test_clerk_dcr_failure_refuses_the_registration(start: Start) -> None:
    """Without a registration endpoint upstream nothing is registered here either: 502, not a half client."""
    fake = clerk_fake()  # DCR is off in the Clerk dashboard
    facade = await start("clerk", fake, upstream_dcr=True)
    async with facade.http.post(facade.url + "/register",
                                json={"redirect_uris": ["http://127.0.0.1:5599/callback"]}) as response:
        assert response.status == 502
        assert (await response.json())["error"] == "server_error"
    keys = await facade.services.store.redis.keys("*client:*")
    assert keys == []


async def test_a_client_without_its_upstream_registration_must_register_again(start: Start) -> None:
    """PROXY_UPSTREAM_DCR with no static client: a registration that lost its upstream twin (registered
    before DCR was on) cannot act at the IdP. A refresh or fresh userinfo that needs the IdP is 401
    invalid_client (the client's cue to register again), and /authorize is the same error as a page,
    sending nobody upstream."""
    fake = clerk_fake(registration=True, access_token_ttl_s=1)
    facade = await start("clerk", fake, upstream_dcr=True, upstream_client_id=None, upstream_client_secret=None,
                         upstream_fresh_userinfo=True)
    client, body, _ = await signed_in(facade)
    store = facade.services.store
    record = await store.load_client(client.client_id)
    assert record is not None and MIRROR_FIELD in record
    del record[MIRROR_FIELD]
    await store.redis.set(store.key("client", client.client_id), json.dumps(record), keepttl=True)
    status, refused = await client.refresh(body["refresh_token"])  # the upstream token expired: refresh it
    assert (status, refused["error"]) == (401, "invalid_client")
    assert "register it again" in refused["error_description"]
    async with facade.http.get(facade.url + "/userinfo",  # fresh claims need the upstream token refreshed
                               headers={"Authorization": f"Bearer {body['access_token']}"}) as response:
        assert (response.status, (await response.json())["error"]) == (401, "invalid_client")
    asked = len(fake.authorize_requests)
    response, _ = await client.start()
    assert (response.status, response.content_type) == (400, "text/html")
    assert "Location" not in response.headers and "invalid_client" in await response.text()
    assert len(fake.authorize_requests) == asked


# -- Google ----------------------------------------------------------------------------------------------
async def test_google_flow_asks_for_offline_access_and_the_hosted_domain(start: Start) -> None:
    """access_type=offline + prompt=consent earn the refresh token; hd is sent and then enforced."""
    fake = google_fake()
    facade = await start("google", fake, upstream_hosted_domain="example.com")
    _, _, claims = await signed_in(facade)
    sent = fake.authorize_requests[-1]
    assert (sent["access_type"], sent["prompt"], sent["hd"]) == ("offline", "consent", "example.com")
    assert sent["scope"] == "openid email profile"
    assert any(fake.refresh_tokens.values())
    assert claims["sub"] == "110169484474386276334"
    assert claims["email_verified"] is True  # Google's string "true" became a boolean
    assert claims["hd"] == "example.com"


async def test_google_legacy_issuer_spelling_is_accepted(start: Start) -> None:
    """Google id_tokens may say iss=accounts.google.com (no scheme) for the https issuer."""
    fake = google_fake()
    facade = await start("google", fake)
    await signed_in(facade)
    assert "hd" not in fake.authorize_requests[-1]  # no PROXY_UPSTREAM_HOSTED_DOMAIN, no hd


async def test_google_account_outside_the_hosted_domain_is_denied(start: Start) -> None:
    """The hd parameter is a UI hint; the callback checks the id_token's hd claim."""
    fake = google_fake(hd="elsewhere.example")
    facade = await start("google", fake, upstream_hosted_domain="example.com")
    params = await failed_sign_in(facade)
    assert params["error"] == "access_denied"
    assert params["iss"] == facade.url


async def test_google_consumer_account_without_hd_is_denied(start: Start) -> None:
    """PROXY_UPSTREAM_HOSTED_DOMAIN: a Google id_token without the hd claim is access_denied."""
    fake = google_fake()
    del fake.quirks.claims["hd"]
    facade = await start("google", fake, upstream_hosted_domain="example.com")
    assert (await failed_sign_in(facade))["error"] == "access_denied"


async def test_google_prompt_login_becomes_select_account_and_keeps_consent(start: Start) -> None:
    """Google has no prompt=login; asking for a fresh sign-in must not lose prompt=consent."""
    fake = google_fake()
    facade = await start("google", fake)
    await signed_in(facade, prompt="login")
    assert fake.authorize_requests[-1]["prompt"] == "consent select_account"


async def test_google_refresh_keeps_the_one_refresh_token(start: Start) -> None:
    """A Google refresh answer has no refresh_token: the facade keeps using the first one."""
    fake = google_fake()
    fake.quirks.access_token_ttl_s = 1
    facade = await start("google", fake)
    client, body, _ = await signed_in(facade)
    first_refresh = next(iter(fake.refresh_tokens))
    for _ in range(2):
        status, body = await client.refresh(body["refresh_token"])
        assert status == 200, body
        assert fake.token_requests[-1]["form"]["refresh_token"] == first_refresh


# -- Auth0 -----------------------------------------------------------------------------------------------
async def test_auth0_flow_with_audience_and_the_trailing_slash_issuer(start: Start) -> None:
    """Auth0's issuer ends in '/' (the operator typed it without); audience asks for a JWT access token."""
    fake = FakeOidc(OidcQuirks(issuer_suffix="/", claims={"sub": "google-oauth2|1093", "email": "a@x.example",
                                                          "email_verified": False, "nickname": "a"}))
    facade = await start("auth0", fake, upstream_audience="https://api.example.com")
    _, _, claims = await signed_in(facade)
    sent = fake.authorize_requests[-1]
    assert sent["audience"] == "https://api.example.com"
    assert sent["scope"].split() == ["openid", "email", "profile", "offline_access"]
    assert fake.token_requests[-1]["auth"] == "client_secret_basic"  # chosen from discovery
    assert claims["sub"] == "google-oauth2|1093"
    assert claims["email_verified"] is False
    assert "nickname" not in claims  # only the allow-listed claims are passed on


async def test_auth0_without_audience_sends_none(start: Start) -> None:
    """Auth0 without PROXY_UPSTREAM_AUDIENCE sends no audience parameter upstream."""
    fake = FakeOidc(OidcQuirks(issuer_suffix="/"))
    facade = await start("auth0", fake)
    await signed_in(facade)
    assert "audience" not in fake.authorize_requests[-1]


# -- GitHub ---------------------------------------------------------------------------------------------
async def test_github_flow_builds_the_identity_from_the_user_api(start: Start) -> None:
    """No id_token upstream: sub is the numeric id, email the primary verified one from /user/emails,
    and the facade mints the id_token itself."""
    fake = FakeGitHub(CLIENT_ID, CLIENT_SECRET)
    facade = await start("github", fake)
    _, body, claims = await signed_in(facade)

    sent = fake.authorize_requests[-1]
    assert sent["scope"] == "read:user user:email"
    assert "nonce" not in sent and sent["code_challenge_method"] == "S256"
    assert sent["redirect_uri"] == facade.url + "/callback"
    exchange = fake.token_requests[-1]
    assert exchange["accept"] == "application/json"
    assert exchange["secret_in_body"] and exchange["authorization"] is None  # client_secret_post only
    assert exchange["form"]["client_id"] == CLIENT_ID and exchange["form"]["code_verifier"]

    assert [call["path"] for call in fake.api_requests] == ["/api/v3/user", "/api/v3/user/emails"]
    for call in fake.api_requests:
        assert call["headers"]["Accept"] == "application/vnd.github+json"
        assert call["headers"]["X-GitHub-Api-Version"] == "2022-11-28"
        assert call["headers"]["User-Agent"] == "oauth-facade"
        assert call["headers"]["Authorization"].startswith("Bearer gho_")

    assert claims["sub"] == "583231"
    assert claims["preferred_username"] == "ada-renamed"
    assert claims["email"] == "ada@example.com" and claims["email_verified"] is True
    assert claims["picture"] == "https://avatars.example/u/583231"
    assert body["refresh_token"]


async def test_github_public_email_needs_no_email_list(start: Start) -> None:
    """A GitHub user with a public email needs no /user/emails call, and the email is not claimed verified."""
    fake = FakeGitHub(CLIENT_ID, CLIENT_SECRET, quirks=GitHubQuirks(user={"id": 7, "login": "x",
                                                                           "email": "pub@example.com"}))
    facade = await start("github", fake)
    _, _, claims = await signed_in(facade)
    assert [call["path"] for call in fake.api_requests] == ["/api/v3/user"]
    assert claims["email"] == "pub@example.com" and "email_verified" not in claims


async def test_github_error_with_http_200_is_a_refusal(start: Start) -> None:
    """GitHub answers bad_verification_code with 200: it is still an error, and the client is told
    access_denied without GitHub's words."""
    fake = FakeGitHub(CLIENT_ID, CLIENT_SECRET)
    facade = await start("github", fake)
    client = facade.client()
    await client.register()
    response, auth = await client.start()
    upstream = await client.get(response.headers["Location"])
    fake.codes.clear()  # the code expired at GitHub
    callback = await client.get(upstream.headers["Location"])
    params = query_of(callback.headers["Location"])
    assert callback.headers["Location"].startswith(client.redirect_uri)
    assert params["error"] == "access_denied"
    assert "verification" not in callback.headers["Location"]
    assert auth.state == params["state"]


async def test_github_rate_limit_is_temporarily_unavailable(start: Start) -> None:
    """GitHub's rate-limit answer is temporarily_unavailable to the client."""
    fake = FakeGitHub(CLIENT_ID, CLIENT_SECRET, quirks=GitHubQuirks(rate_limited=True))
    facade = await start("github", fake)
    params = await failed_sign_in(facade)
    assert params["error"] == "temporarily_unavailable"


async def test_github_expiring_tokens_rotate_strictly(start: Start) -> None:
    """A GitHub refresh token works once: the facade must store and use the rotated one."""
    fake = FakeGitHub(CLIENT_ID, CLIENT_SECRET, quirks=GitHubQuirks(expiring_tokens=True))
    facade = await start("github", fake, upstream_refresh_skew_s=28800)  # treat the 8 h token as expiring
    client, body, _ = await signed_in(facade)
    presented = []
    for _ in range(2):
        current = next(iter(fake.refresh_tokens))
        status, body = await client.refresh(body["refresh_token"])
        assert status == 200, body
        presented.append(fake.token_requests[-1]["form"]["refresh_token"])
        assert presented[-1] == current
    assert presented[0] != presented[1]
    assert fake.token_requests[-1]["accept"] == "application/json"
