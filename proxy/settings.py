"""The facade's configuration: one validated object, read from ``PROXY_*`` variables.

Every field's description is the documentation operators read (the README table is generated from it
by ``oauth-facade settings --markdown``), so the names are an interface: rename nothing without a deprecation.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

WordList = Annotated[tuple[str, ...], NoDecode]

DEFAULT_ISSUER = "http://127.0.0.1:8080"
DEV_IDP_MOUNT = "/devidp"
DEV_IDP_CLIENT_ID = "oauth-facade-dev"
DEV_IDP_CLIENT_SECRET = "dev-secret"
GATEWAY_PAIR = re.compile(r"^(?P<resource>https?://[^=]+)=(?P<backend>https?://.+)$")


def split_words(value: object) -> tuple[str, ...]:
    """Accept ``a b``, ``a,b`` or a JSON-free list, so shell users need no quoting tricks."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(word for word in value.replace(",", " ").split() if word)
    return tuple(str(word) for word in value)  # type: ignore[attr-defined]


def gateway_pair(entry: str) -> tuple[str, str]:
    """`RESOURCE=BACKEND` split at the first `=` that starts a URL, so a backend URL may carry a query."""
    match = GATEWAY_PAIR.match(entry)
    if match is None:
        raise ValueError(f"{entry!r} is not RESOURCE=BACKEND (two http(s) URLs joined by '=')")
    return match["resource"], match["backend"]


class Settings(BaseSettings):
    """All settings; the env name of each is ``PROXY_`` + the upper-cased field name."""

    model_config = SettingsConfigDict(
        env_prefix="PROXY_", env_file=".env", extra="ignore", frozen=True, validate_default=True
    )

    # -- where the facade is ---------------------------------------------------------------------
    issuer: str = Field(
        DEFAULT_ISSUER,
        description="Public base URL of the facade; `issuer` in metadata, `iss` in every token, byte for byte.",
    )
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="Port to listen on.")
    env: Literal["development", "production"] = Field(
        "development",
        description="`production` refuses development shortcuts (dev IdP, generated keys, in-memory store).",
    )

    # -- state -------------------------------------------------------------------------------------
    redis_url: str | None = Field(
        None,
        description="`redis://`, `rediss://`, `unix://`, `redis+cluster://host:port` or "
        "`redis+sentinel://host:port[,host:port]/service[/db]`. Unset: in-memory, single process only.",
    )
    redis_prefix: str = Field("oauthfacade:", description="Prefix of every Redis key (share one Redis).")
    redis_timeout_s: float = Field(2.0, gt=0, description="Timeout of one Redis command.")
    redis_max_connections: int = Field(
        50, ge=1, le=10000,
        description="Redis connections one facade process keeps at most (per node on a Cluster). A command "
        "that finds them all busy waits for one instead of failing (README: Load and connection pool).",
    )
    redis_pool_timeout_s: float = Field(
        5.0, gt=0, le=60,
        description="How long a request waits for a free Redis connection before it gets 503; keep it "
        "below your clients' request timeout.",
    )

    # -- upstream identity provider ------------------------------------------------------------------
    upstream_profile: str = Field("generic", description="Which IdP: generic|clerk|google|auth0|github.")
    upstream_issuer: str | None = Field(
        None, description="Upstream issuer URL (github: a GitHub Enterprise Server base URL). "
        "Unset: the profile's own (google, github), else the bundled dev IdP.")
    upstream_client_id: str | None = Field(None, description="The facade's client id at the upstream.")
    upstream_client_secret: SecretStr | None = Field(None, description="The facade's client secret upstream.")
    upstream_scopes: WordList = Field((), description="Extra upstream scopes to request (space separated).")
    upstream_audience: str | None = Field(None, description="Auth0 `audience` parameter.")
    upstream_hosted_domain: str | None = Field(None, description="Google `hd`: only accept this domain.")
    upstream_dcr: bool = Field(
        False, description="Mirror each registration to the upstream's DCR (generic, clerk, auth0).")
    upstream_fresh_userinfo: bool = Field(
        False, description="GET /userinfo asks the upstream's userinfo for fresh claims (else the sign-in's).")
    upstream_timeout_s: float = Field(10.0, gt=0, description="Timeout of one upstream HTTP call.")
    upstream_refresh_timeout_s: float = Field(
        30.0, gt=0, description="Timeout of an upstream refresh: generous, a refresh the IdP processed but the "
        "facade never heard of leaves a rotated refresh token behind (README: upstream errors).")
    upstream_refresh: Literal["with-client", "on-demand"] = Field(
        "with-client", description="`with-client`: a client's refresh also refreshes the upstream token near its "
        "expiry (an upstream revocation ends the session within one access-token lifetime); `on-demand`: only a "
        "token exchange or fresh userinfo does, so IdP outages never reach clients' refreshes.")
    upstream_offline_access: Literal["scope", "scope+consent", "access_type", "none"] | None = Field(
        None, description="How the facade earns an upstream refresh token: `scope` (offline_access), "
        "`scope+consent` (also prompt=consent, OIDC Core §11), `access_type` (Google's access_type=offline, "
        "prompt=consent) or `none`. Unset: the profile's default.")

    # -- what the facade issues ------------------------------------------------------------------------
    signing_keys_file: Path | None = Field(
        None, description="PEM, JWK or JWKS file; several keys = rotation, the first signs."
    )
    signing_alg: Literal["RS256", "ES256", "PS256"] = Field("RS256", description="Alg of a generated key.")
    scopes: WordList = Field(("openid", "offline_access"), description="Scopes clients may be granted.")
    resources: WordList = Field((), description="Protected MCP server URLs. Default `<issuer>/mcp`.")
    access_token_mode: Literal["jwt", "upstream"] = Field(
        "jwt", description="`upstream` hands the IdP's access token through (see README trade-off)."
    )
    introspection_secret: SecretStr | None = Field(
        None, description="Legacy single credential for POST /introspect (any Basic username, or Bearer); may "
        "introspect every resource, never exchange tokens. Prefer PROXY_RESOURCE_SERVERS_FILE.")
    resource_servers_file: Path | None = Field(
        None, description="TOML file of named resource-server credentials: which resources each may introspect, "
        "and whether it may exchange their tokens for the user's upstream token (RFC 8693).")

    # -- lifetimes ------------------------------------------------------------------------------
    access_token_ttl_s: int = Field(3600, gt=0, description="Access and id_token lifetime.")
    refresh_token_idle_ttl_s: int = Field(30 * 86400, gt=0, description="Refresh family unused lifetime.")
    refresh_token_absolute_ttl_s: int = Field(90 * 86400, gt=0, description="Refresh family max lifetime.")
    refresh_grace_s: int = Field(30, ge=0, description="Window in which a just-rotated refresh token replays.")
    code_ttl_s: int = Field(60, gt=0, le=600, description="Authorization code lifetime.")
    transaction_ttl_s: int = Field(600, gt=0, description="Sign-in transaction lifetime.")
    client_ttl_s: int = Field(
        30 * 86400, gt=0, description="Registration lifetime once used for a sign-in, refreshed on use.")
    unused_client_ttl_s: int = Field(
        86400, gt=0, le=86400, description="Lifetime of a registration never used for a sign-in (at most a day); "
        "its first code redemption extends it to PROXY_CLIENT_TTL_S.")
    upstream_refresh_skew_s: int = Field(60, ge=0, description="Refresh upstream this long before expiry.")

    # -- protection -------------------------------------------------------------------------------------
    consent: bool = Field(True, description="`off`: no consent page (trusted single-client deployments).")
    consent_ttl_s: int = Field(30 * 86400, gt=0, description="How long a browser's approval is remembered.")
    rate_limits: bool = Field(True, description="`off`: no rate limits (a load test from one address).")
    rate_limit_register_per_min: int = Field(
        30, gt=0, description="POST /register per minute from one address; more get 429 with Retry-After.")
    rate_limit_register_per_network_per_hour: int = Field(
        1000, gt=0, description="POST /register per hour from one network (IPv4 /24, IPv6 /56).")
    rate_limit_authorize_per_min: int = Field(
        120, gt=0, description="GET /authorize per minute from one address; "
        "also POST /consent and GET /callback per minute from one address.")
    rate_limit_token_per_min: int = Field(
        300, gt=0, description="POST /token per minute from one address; "
        "also POST /revoke per minute from one address.")
    rate_limit_introspect_per_min: int = Field(
        1200, gt=0, description="POST /introspect per minute from one address.")
    rate_limit_userinfo_per_min: int = Field(300, gt=0, description="GET/POST /userinfo per minute from one address.")
    rate_limit_auth_failures_per_min: int = Field(
        10, gt=0, description="Wrong credentials at /introspect and /metrics per minute from one address, and "
        "wrong client or resource-server secrets at /token per minute for one client from one address; "
        "beyond, 429 there (even with the right one) until the minute ends.")
    max_registrations_per_hour: int = Field(
        10000, gt=0, description="Registrations per hour, all addresses together, kept PROXY_UNUSED_CLIENT_TTL_S "
        "before a sign-in; beyond, never refused but kept only 2 x PROXY_TRANSACTION_TTL_S unless used.")
    trusted_proxies: WordList = Field((), description="Addresses/CIDRs whose X-Forwarded-For is trusted.")
    max_body_bytes: int = Field(64 * 1024, gt=0, description="Larger request bodies get 413.")

    # -- client registration (CIMD, DCR, pre-registered clients) ---------------------------------------
    cimd: bool = Field(
        True, description="Accept https URL client ids (Client ID Metadata Documents) and advertise "
        "`client_id_metadata_document_supported`.")
    cimd_allowed_hosts: WordList = Field(
        (), description="Host patterns (`claude.ai *.vscode.dev`) whose URL client ids are accepted; empty: any.")
    cimd_fetch_timeout_s: float = Field(5.0, gt=0, le=30, description="Timeout of one metadata document fetch.")
    cimd_cache_min_s: int = Field(300, ge=0, description="Floor of a cached document's freshness (Cache-Control).")
    cimd_cache_max_s: int = Field(86400, gt=0, description="Ceiling of a cached document's freshness.")
    cimd_cache_default_s: int = Field(3600, ge=0, description="Freshness when the host sends no caching headers.")
    cimd_stale_s: int = Field(
        21600, ge=0, description="How long past its freshness a cached document serves while its host is down.")
    cimd_dev_hosts: WordList = Field(
        (), description="Development only (refused in production): host patterns that may resolve to loopback "
        "(metadata document and key set hosts), and be fetched over plain http (the dev IdP as enterprise IdP).")
    cimd_ca_file: Path | None = Field(
        None, description="Development only (refused in production): extra CA file for document and key set hosts.")
    cimd_access_token_ttl: WordList = Field(
        (), description="Access-token lifetime of CIMD clients by host: `HOST_PATTERN=SECONDS` pairs, e.g. "
        "`chatgpt.com=28800`; the first matching pattern wins, other clients get PROXY_ACCESS_TOKEN_TTL_S.")
    jwks_cache_s: int = Field(
        3600, gt=0, le=86400, description="How long a key set fetched from a jwks_uri (private_key_jwt clients) "
        "is used before it is fetched again.")
    jwks_refetch_interval_s: int = Field(
        30, gt=0, le=3600, description="At most one refetch of a jwks_uri per this many seconds, across replicas, "
        "when a JWT names a kid its cached key set lacks (key rotation).")
    dcr: bool = Field(
        True, description="`off`: no POST /register and no `registration_endpoint` (clients use CIMD).")
    clients_file: Path | None = Field(
        None, description="TOML file of pre-registered clients (`[[client]]`; see README, Client registration).")
    enterprise_idps_file: Path | None = Field(
        None, description="TOML file of trusted enterprise IdPs (`[[idp]]`): whose Identity Assertion JWT "
        "Authorization Grants (ID-JAG, MCP Enterprise-Managed Authorization) the jwt-bearer grant accepts; "
        "see README, Enterprise IdPs. Unset: the grant is off and not advertised.")

    # -- protecting MCP servers (gateway, forward-auth) -------------------------------------------
    gateway_backends: WordList = Field(
        (), description="Gateway mode: `RESOURCE=BACKEND` pairs, space separated, e.g. "
        "`https://mcp.example.com/mcp=http://mcp:3000/mcp`. The facade serves each resource's path itself, "
        "checks every request's token and forwards it to the backend with identity headers instead.")
    gateway_timeout_s: float = Field(
        30.0, gt=0, description="Time a gateway backend has to accept a request and send its response headers "
        "(504 after); a response stream itself may last as long as it needs.")
    gateway_max_body_bytes: int = Field(
        4 * 1024 * 1024, gt=0, description="Largest MCP request body the gateway forwards; larger get 413.")
    gateway_backend_cookies: bool = Field(
        False, description="`on`: pass gateway backends' Set-Cookie headers to clients. Off by default: the "
        "gateway answers on the facade's own origin, where its consent and sign-in cookies live.")
    tool_scopes: WordList = Field(
        (), description="Per-tool scope policy: `TOOL=SCOPE[+SCOPE]` pairs, e.g. `deploy=mcp:deploy`: "
        "`tools/call` of that tool needs those scopes (403 insufficient_scope; gateway and forward-auth).")

    # -- operations -------------------------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="`json`, `console`, or `auto`: console lines on a terminal in development, else json.")
    metrics_token: SecretStr | None = Field(None, description="Bearer token protecting GET /metrics.")

    # -- operators: admin API, audit trail ----------------------------------------------------------------
    admin_token: SecretStr | None = Field(
        None, description="Bearer token of the admin API (`/admin/grants`: list and end users' grants); unset: "
        "the admin API is off (404). Its own credential, never the metrics token; at least 32 characters.")
    audit_log: str | None = Field(
        None, description="Where the audit trail goes (JSON lines, README: Audit trail): `stdout`, `stderr` or a "
        "file path (appended to). Unset: no audit trail.")
    audit_tool_calls: bool = Field(
        False, description="Also write `audit.tool_call` for every `tools/call` through the gateway (needs "
        "PROXY_AUDIT_LOG).")
    policy_file: Path | None = Field(
        None, description="TOML access policy beyond scopes: which subjects, email domains, groups and clients may "
        "use each resource and tool (README: Access policy). Gateway, forward-auth; unset: scopes alone decide.")

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("upstream_scopes", "scopes", "resources", "trusted_proxies", "gateway_backends", "tool_scopes",
                     "cimd_allowed_hosts", "cimd_dev_hosts", "cimd_access_token_ttl", mode="before")
    @classmethod
    def _words(cls, value: object) -> tuple[str, ...]:
        return split_words(value)

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL such as https://auth.example.com")
        if parts.query or parts.fragment or "#" in value:
            raise ValueError("must not have a query or fragment (RFC 8414 §2)")
        if value.endswith("/"):
            raise ValueError("must not end with '/': clients compare it byte for byte")
        return value

    @field_validator("upstream_issuer")
    @classmethod
    def _upstream_issuer(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an absolute http(s) URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        allowed = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster", "redis+sentinel")
        if urlsplit(value).scheme not in allowed:
            raise ValueError(f"scheme must be one of {', '.join(allowed)}")
        return value

    @field_validator("redis_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError("must not contain '{' or '}' (they would break Redis Cluster hash tags)")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            ipaddress.ip_network(entry, strict=False)
        return value

    @field_validator("resources")
    @classmethod
    def _resources(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
                raise ValueError(f"{url!r} is not an absolute http(s) URL without fragment")
        return value

    @field_validator("gateway_backends")
    @classmethod
    def _gateway_backends(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        paths: set[str] = set()
        for entry in value:
            resource, backend = gateway_pair(entry)
            for url in (resource, backend):
                parts = urlsplit(url)
                if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
                    raise ValueError(f"{url!r} is not an absolute http(s) URL without fragment")
            path = urlsplit(resource).path.rstrip("/")
            if not path or urlsplit(resource).query:
                raise ValueError(f"{resource!r}: a gateway resource needs a path (e.g. /mcp) and no query")
            if path in paths:
                raise ValueError(f"two gateway resources share the path {path!r}")
            paths.add(path)
        return value

    @field_validator("tool_scopes")
    @classmethod
    def _tool_scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            tool, _, scopes = entry.partition("=")
            if not tool or not scopes or not all(scopes.split("+")):
                raise ValueError(f"{entry!r} is not TOOL=SCOPE[+SCOPE]")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        """What holds whatever the IdP; the profile-dependent rules are ``profiles.coherent``."""
        if self.upstream_issuer and not self.upstream_client_id and not self.upstream_dcr:
            raise ValueError("PROXY_UPSTREAM_CLIENT_ID is required when PROXY_UPSTREAM_ISSUER is set")
        if self.env == "production":
            if self.signing_keys_file is None:
                raise ValueError("PROXY_ENV=production needs PROXY_SIGNING_KEYS_FILE (persistent keys)")
            if not self.redis_url:
                raise ValueError("PROXY_ENV=production needs PROXY_REDIS_URL (the in-memory store is one process)")
            if self.cimd_dev_hosts or self.cimd_ca_file is not None:
                raise ValueError("PROXY_ENV=production refuses PROXY_CIMD_DEV_HOSTS and PROXY_CIMD_CA_FILE "
                                 "(they let client ids reach loopback services)")
        if self.admin_token is not None and len(self.admin_token.get_secret_value()) < 32:
            raise ValueError("PROXY_ADMIN_TOKEN must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        if self.admin_token is not None and self.metrics_token is not None and (
                self.admin_token.get_secret_value() == self.metrics_token.get_secret_value()):
            raise ValueError("PROXY_ADMIN_TOKEN must differ from PROXY_METRICS_TOKEN (scrapers must not end grants)")
        if self.cimd_cache_min_s > self.cimd_cache_max_s:
            raise ValueError("PROXY_CIMD_CACHE_MIN_S must not exceed PROXY_CIMD_CACHE_MAX_S")
        for entry in self.cimd_access_token_ttl:
            pattern, _, seconds = entry.rpartition("=")
            if not pattern or not seconds.isdigit() or not 0 < int(seconds) <= 366 * 86400:
                raise ValueError(f"PROXY_CIMD_ACCESS_TOKEN_TTL: {entry!r} is not HOST_PATTERN=SECONDS "
                                 "(seconds between 1 and a year)")
        return self

    # -- derived values (the upstream's: ``proxy.upstream.profiles``, which knows each IdP) -----------------
    @property
    def effective_upstream_client_id(self) -> str:
        return self.upstream_client_id or DEV_IDP_CLIENT_ID

    @property
    def effective_resources(self) -> tuple[str, ...]:
        """PROXY_RESOURCES (default `<issuer>/mcp` unless gateway resources are set), plus the gateway's."""
        gateway = tuple(gateway_pair(entry)[0] for entry in self.gateway_backends)
        configured = self.resources or (() if gateway else (self.issuer + "/mcp",))
        return tuple(dict.fromkeys((*configured, *gateway)))

    def cimd_access_token_ttl_s(self, host: str) -> int:
        """The access-token lifetime of a CIMD client from `host` (PROXY_CIMD_ACCESS_TOKEN_TTL, first match)."""
        for entry in self.cimd_access_token_ttl:
            pattern, _, seconds = entry.rpartition("=")
            if fnmatch.fnmatchcase(host, pattern.lower()):
                return int(seconds)
        return self.access_token_ttl_s

    def url(self, path: str) -> str:
        """An absolute URL of the facade's own."""
        return self.issuer + path


class SettingsError(Exception):
    """A configuration problem, already phrased as the one line the operator sees."""


def load_settings(env_file: str | Path | None = None, **overrides: object) -> Settings:
    """Build settings, turning pydantic's report into one line that names the variable.

    `.env` in the working directory is optional; a file the operator named is not: pydantic-settings
    skips a missing one silently, which turned a typo into the development IdP."""
    if env_file is not None and not Path(env_file).is_file():
        reason = "is a directory" if Path(env_file).is_dir() else "no such file"
        raise SettingsError(f"--env-file {env_file}: {reason}")
    try:
        if env_file is not None:
            return Settings(_env_file=(".env", env_file), **overrides)  # type: ignore[call-arg]
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = first["loc"][0] if first["loc"] else None
        name = f"PROXY_{str(where).upper()}" if where else "configuration"
        message = first["msg"].removeprefix("Value error, ")
        raise SettingsError(f"{name}: {message}") from None
