"""`oauth-facade check`: load the settings, talk to the upstream, print what clients will see.

It fetches the upstream's discovery document and JWKS, looks for what would break a sign-in later
(no PKCE S256, no refresh-token grant, a client-auth method the IdP does not list, no registration
endpoint for PROXY_UPSTREAM_DCR), probes the client credentials with a code exchange for a made-up
code (the IdP answers invalid_client for wrong credentials and invalid_grant for right ones), and
prints the redirect URI to register. It also connects to the store (PING), loads the key file and the
operator's files, and fetches the key sets pre-registered clients and enterprise IdPs name.
Only the JSON document goes to stdout, so `check | python -m json.tool` works; each note is one
`note:` line and each problem one `problem:` line on stderr. Exit code 0 when nothing is wrong, 1
when a problem was found.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiohttp

from proxy.access_policy import PolicyFileError, load_policy
from proxy.app import client_fetcher
from proxy.clients.fetch import system_resolve
from proxy.clients.probe import Findings, probe_key_sets
from proxy.clients.registry import ClientRegistry, ClientsFileError, load_registry
from proxy.clients.resource_servers import ResourceServers, ResourceServersFileError, load_resource_servers
from proxy.discovery.documents import authorization_server_metadata
from proxy.enterprise import probe as enterprise_probe
from proxy.enterprise.discovery import locator_for
from proxy.enterprise.idps import EnterpriseIdps, configured_idps
from proxy.errors import UpstreamError, UpstreamRefused
from proxy.keys import KeyFileError, Keyset
from proxy.settings import Settings, SettingsError
from proxy.store.connect import masked, probe
from proxy.upstream import Upstream, profile_for
from proxy.upstream.client import upstream_errors
from proxy.upstream.offline import advice
from proxy.upstream.profiles import uses_dev_idp

# What IdPs answer a code exchange with credentials they do not accept (GitHub and Auth0 have their own).
BAD_CREDENTIALS = ("invalid_client", "unauthorized_client", "incorrect_client_credentials",
                   "access_denied")  # not a token-endpoint error in RFC 6749 §5.2; Auth0 answers it
BAD_REDIRECT = ("redirect_uri_mismatch",)


@dataclass
class Report:
    """What `check` found: notes for the operator, problems that make the exit code 1."""

    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def take(self, found: Findings) -> None:
        """What a probe of the operator's files found (clients' and enterprise IdPs' key sets)."""
        self.notes += found.notes
        self.problems += found.problems


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _local_problems(settings: Settings, report: Report) -> list[str]:
    """Checks that need no network; the signing algorithms the metadata will list."""
    algs = ["RS256"]
    if settings.signing_keys_file is not None:
        try:
            keyset = Keyset.from_file(settings.signing_keys_file)
        except KeyFileError as exc:
            report.problem(f"PROXY_SIGNING_KEYS_FILE: {exc}")
        else:
            algs = keyset.algs
            report.note(f"signing keys: {len(keyset.keys)} from {settings.signing_keys_file}; "
                        f"{keyset.active.kid} ({keyset.active.alg}) signs")
    else:
        report.note("signing keys: generated at start-up (set PROXY_SIGNING_KEYS_FILE for production)")
    if settings.issuer.startswith("http://"):
        if _loopback(settings.issuer):
            report.note("the issuer is http://; MCP clients and IdPs require https outside localhost")
        else:
            report.problem(f"PROXY_ISSUER {settings.issuer} is http:// on a non-loopback host: MCP clients and "
                           "IdPs refuse it; use https")
    return algs


def _pkce_and_auth(upstream: Upstream, metadata: dict[str, Any], report: Report) -> None:
    methods = metadata.get("code_challenge_methods_supported")
    if methods is None:
        report.note("the upstream does not advertise code_challenge_methods_supported; S256 is sent anyway")
    elif "S256" not in methods:
        report.problem("the upstream does not list PKCE S256 in code_challenge_methods_supported")
    supported = metadata.get("token_endpoint_auth_methods_supported")
    if upstream.client_secret is not None and isinstance(supported, list):
        method = upstream.auth_method(upstream.static, metadata)
        if method not in supported:
            report.problem(f"the profile authenticates with {method}, which the upstream does not list "
                           f"(it lists {', '.join(map(str, supported))})")


def _refresh(upstream: Upstream, metadata: dict[str, Any], report: Report) -> None:
    profile, settings = upstream.profile, upstream.settings
    if not profile.wants_refresh(settings) or profile.refresh == "none":
        return
    grants = metadata.get("grant_types_supported")
    if grants is not None and "refresh_token" not in grants:
        report.problem("the upstream does not list the refresh_token grant: sessions end when its tokens expire")
    advertised = metadata.get("scopes_supported")
    if not isinstance(advertised, list):
        return
    for scope in profile.offline_scopes(settings):
        if scope in advertised:
            continue
        if profile.offline_scopes_if_advertised:
            report.note(f"the upstream does not list {scope}: the facade will not ask it for refresh tokens")
        else:
            report.problem(f"the upstream does not list the {scope} scope that earns refresh tokens")


async def _offline_access(upstream: Upstream, report: Report) -> None:
    """How refresh tokens are earned upstream, and what a sign-in without one means (the facade logs
    `upstream.no_refresh_token` once and counts oauth_facade_upstream_missing_refresh_token_total)."""
    profile, settings = upstream.profile, upstream.settings
    mode = profile.offline_mode(settings)
    if not profile.expects_refresh_token(settings, await upstream.advertised_scopes()):
        report.note(f"offline access: {mode}: the facade expects no upstream refresh token; it cannot refresh "
                    "the upstream token nor revoke the upstream grant")
        return
    words = {"scope": "the offline_access scope", "scope+consent": "offline_access with prompt=consent",
             "access_type": "access_type=offline with prompt=consent"}[mode]
    report.note(f"offline access: {mode}: sign-ins ask for {words}; a sign-in that brings no upstream refresh "
                f"token is logged as upstream.no_refresh_token ({advice(mode)})")


async def _reachable(upstream: Upstream, metadata: dict[str, Any], report: Report) -> bool:
    """An IdP without discovery: its authorize page must answer (any status but 404 and 5xx)."""
    url = metadata["authorization_endpoint"]
    try:
        async with upstream_errors("authorize_page"), upstream.http.get(
                url, params={"client_id": upstream.client_id}, allow_redirects=False) as response:
            status = response.status
    except UpstreamError as exc:
        report.problem(f"upstream unreachable at {url}: {exc.detail}")
        return False
    if status == 404 or status >= 500:
        report.problem(f"upstream authorize endpoint {url} answers HTTP {status}")
        return False
    return True


async def _probe_credentials(upstream: Upstream, report: Report) -> None:
    """Redeem a made-up code: the error says whether the IdP knows these credentials."""
    try:
        await upstream.exchange_code("oauth-facade-check-" + secrets.token_urlsafe(16), secrets.token_urlsafe(48))
    except UpstreamRefused as exc:
        if exc.upstream_error in BAD_CREDENTIALS:
            report.problem(f"the upstream rejects PROXY_UPSTREAM_CLIENT_ID/SECRET ({exc.upstream_error})")
        elif exc.upstream_error in BAD_REDIRECT:
            report.problem(f"the upstream does not know the redirect URI {upstream.callback_url}: register it")
        else:
            report.note(f"client credentials: accepted (a made-up code was refused with {exc.upstream_error})")
    except UpstreamError as exc:
        report.problem(f"upstream token endpoint: {exc.detail}")
    else:
        report.problem("the upstream token endpoint accepted a made-up code")


def _effective_upstream(upstream: Upstream, metadata: dict[str, Any], scope: str) -> dict[str, Any]:
    profile, settings = upstream.profile, upstream.settings
    effective: dict[str, Any] = {
        "profile": profile.name,
        "issuer": upstream.issuer,
        "authorization_endpoint": metadata.get("authorization_endpoint"),
        "token_endpoint": metadata.get("token_endpoint"),
        "identity": "id_token" if profile.oidc else f"user API {metadata.get('userinfo_endpoint')}",
        "scope": scope,
        "authorize_parameters": profile.authorize_extras(settings),
        "redirect_uri": upstream.callback_url,
    }
    if upstream.mirrors:
        effective["client"] = f"one per registration, via {metadata.get('registration_endpoint')}"
    else:
        effective["client_id"] = upstream.client_id
        effective["client_auth"] = ("none (public client)" if upstream.client_secret is None
                                    else upstream.auth_method(upstream.static, metadata))
    return effective


async def check_upstream(settings: Settings, http: aiohttp.ClientSession, report: Report) -> dict[str, Any] | None:
    """Everything about the upstream; the effective upstream configuration, or None when unusable."""
    profile = profile_for(settings)
    upstream = Upstream(settings, profile, http)
    try:
        metadata = await upstream.metadata()
    except UpstreamError as exc:
        report.problem(f"upstream unreachable or unusable at {upstream.issuer}: {exc.detail}")
        return None
    if profile.oidc:
        try:
            if not (await upstream.id_tokens.keys()).keys:
                report.problem("the upstream JWKS has no keys")
        except UpstreamError as exc:
            report.problem(f"upstream JWKS: {exc.detail}")
        _pkce_and_auth(upstream, metadata, report)
    elif not await _reachable(upstream, metadata, report):
        return None
    _refresh(upstream, metadata, report)
    await _offline_access(upstream, report)
    if upstream.mirrors:
        if not isinstance(metadata.get("registration_endpoint"), str):
            report.problem("PROXY_UPSTREAM_DCR=true but the upstream has no registration_endpoint "
                           "(turn on dynamic client registration at the IdP)")
    else:
        if upstream.client_secret is None:
            report.note("PROXY_UPSTREAM_CLIENT_SECRET is not set: the facade acts as a public client upstream")
        await _probe_credentials(upstream, report)
    report.note(f"register this redirect URI at the upstream: {upstream.callback_url} ({profile.redirect_hint})")
    return _effective_upstream(upstream, metadata, await upstream.scope())


async def check_store(settings: Settings, report: Report) -> None:
    """The store the facade would use answers PING (serving refuses to start otherwise)."""
    if not settings.redis_url:
        report.note("store: in-memory (one process only; set PROXY_REDIS_URL for replicas and restarts)")
        return
    cause = await probe(settings.redis_url, timeout_s=settings.redis_timeout_s)
    if cause is None:
        report.note(f"store: {masked(settings.redis_url)} answered PING")
    else:
        report.problem(f"PROXY_REDIS_URL: the store at {masked(settings.redis_url)} did not answer: {cause}")


@dataclass(frozen=True, slots=True)
class OperatorFiles:
    """What the operator's files would give the served facade (None: a file did not load)."""

    client_credentials: bool
    resource_servers: ResourceServers | None
    private_key_jwt: bool = False  # a pre-registered client authenticates with keys
    enterprise_idps: EnterpriseIdps | None = None
    clients: ClientRegistry | None = None


def check_files(settings: Settings, scopes: tuple[str, ...], report: Report) -> OperatorFiles:
    """PROXY_CLIENTS_FILE, PROXY_RESOURCE_SERVERS_FILE, PROXY_ENTERPRISE_IDPS_FILE and PROXY_POLICY_FILE load
    as `serve` would load them: a file that `serve` refuses at start-up is a problem here, named the same way,
    never a traceback."""
    client_credentials = private_key_jwt = False
    registry: ClientRegistry | None = None
    try:
        registry = load_registry(settings.clients_file, scopes=scopes, resources=settings.effective_resources)
        client_credentials = any("client_credentials" in c.grant_types for c in registry.clients.values())
        private_key_jwt = registry.has_private_key_jwt
        if registry.clients:
            report.note(f"clients file: {len(registry.clients)} pre-registered client(s)")
    except ClientsFileError as exc:
        report.problem(f"PROXY_CLIENTS_FILE: {exc}")
    try:
        servers: ResourceServers | None = load_resource_servers(settings)
    except ResourceServersFileError as exc:
        report.problem(f"PROXY_RESOURCE_SERVERS_FILE: {exc}")
        servers = None
    if settings.policy_file is not None:
        try:
            access = load_policy(settings.policy_file, resources=settings.effective_resources)
            report.note(f"policy file: {len(access.rules)} rule(s)")
        except PolicyFileError as exc:
            report.problem(f"PROXY_POLICY_FILE: {exc}")
    try:
        idps: EnterpriseIdps | None = configured_idps(settings)
    except SettingsError as exc:
        report.problem(str(exc))
        idps = None
    return OperatorFiles(client_credentials, servers, private_key_jwt, idps, registry)


async def check_client_key_sets(settings: Settings, registry: ClientRegistry | None, report: Report) -> None:
    """Each pre-registered client's jwks_uri, fetched as /token will fetch it."""
    if registry is None:
        return
    report.take(await probe_key_sets(registry, client_fetcher(settings, system_resolve)))


async def check_enterprise_idps(settings: Settings, idps: EnterpriseIdps | None, report: Report) -> None:
    """Each trusted enterprise IdP's key set, located and fetched as the jwt-bearer grant will."""
    if idps is None or not idps.configured:
        return
    report.take(await enterprise_probe.probe(idps, locator_for(settings, system_resolve)))


async def check(settings: Settings, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run every check; the effective metadata on `out`, notes and problems on `err`; 1 when a problem was found."""
    out, err = out or sys.stdout, err or sys.stderr
    report = Report()
    algs = _local_problems(settings, report)
    await check_store(settings, report)
    upstream: dict[str, Any] | None = None
    if uses_dev_idp(settings):
        report.note("upstream: the bundled development IdP (mounted at /devidp when serving)")
    else:
        timeout = aiohttp.ClientTimeout(total=settings.upstream_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            upstream = await check_upstream(settings, http, report)
    scopes = list(profile_for(settings).offered_scopes(settings))
    files = check_files(settings, tuple(scopes), report)
    await check_client_key_sets(settings, files.clients, report)
    await check_enterprise_idps(settings, files.enterprise_idps, report)
    for note in report.notes:
        print(f"note: {note}", file=err)
    metadata = authorization_server_metadata(settings, algs, scopes, files.client_credentials,
                                             resource_servers=files.resource_servers or ResourceServers(),
                                             private_key_jwt=settings.cimd or files.private_key_jwt,
                                             enterprise_idps=bool(files.enterprise_idps and
                                                                  files.enterprise_idps.configured))
    document: dict[str, Any] = {"authorization_server": metadata}
    if upstream is not None:
        document["upstream"] = upstream
    print(json.dumps(document, indent=2), file=out)
    for problem in report.problems:
        print(f"problem: {problem}", file=err)
    return 1 if report.problems else 0


def run_check(settings: Settings) -> int:
    return asyncio.run(check(settings))
