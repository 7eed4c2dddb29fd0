"""The enterprise IdPs of `PROXY_ENTERPRISE_IDPS_FILE` (TOML, read once at start-up; a person edits it):

    [[idp]]
    issuer = "https://acme.okta.com"             # the exact `iss` of its ID-JAGs (no trailing-slash games)
    jwks_uri = "https://acme.okta.com/oauth2/v1/keys"  # optional: else `jwks_uri` of the issuer's discovery
    clients = ["https://claude.ai/oauth/claude-code-client-metadata"]  # optional: who may present its
                                                 # ID-JAGs (their `client_id` claim); absent or empty: any
    subject = "prefixed"                         # optional: "prefixed" (default) or "unchanged"

Subjects: by default a user of this IdP is `<issuer>#<sub>` at the facade (the `sub` of its access
tokens and of /userinfo). An issuer URL never holds `#` (RFC 8414 §2: no fragment) and each issuer is
listed once, so no two IdPs' users can ever share a subject, and none can take the subject of a user who
signs in through the upstream (PROXY_UPSTREAM_ISSUER), whose subjects are the upstream's own `sub`.
`subject = "unchanged"` keeps the ID-JAG's `sub` as is: for the IdP that is also the upstream, so that a
person is one subject whichever way they arrive. At most one IdP may say so (two could collide).

Changes take effect on restart, as with PROXY_CLIENTS_FILE and PROXY_RESOURCE_SERVERS_FILE; key sets are
fetched when needed and follow the IdP's key rotation without one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from proxy.clients.tomlfile import array_of_tables
from proxy.settings import Settings, SettingsError

KNOWN_KEYS = frozenset({"issuer", "jwks_uri", "clients", "subject"})
SUBJECT_MODES = ("prefixed", "unchanged")
MAX_IDPS = 100


class EnterpriseIdpsFileError(ValueError):
    """A problem in the enterprise IdPs file, phrased for the operator (entry, key)."""


@dataclass(frozen=True, slots=True)
class EnterpriseIdp:
    issuer: str
    jwks_uri: str | None = None  # None: the issuer's discovery document names it
    clients: frozenset[str] = frozenset()  # empty: any client
    subject: str = "prefixed"

    def allows(self, client_id: str) -> bool:
        """True when `client_id` may present this IdP's assertions (the operator's `clients` list)."""
        return not self.clients or client_id in self.clients

    def subject_of(self, sub: str) -> str:
        """The facade's subject for this IdP's user `sub` (see the module docstring)."""
        return sub if self.subject == "unchanged" else f"{self.issuer}#{sub}"


@dataclass(frozen=True, slots=True)
class EnterpriseIdps:
    by_issuer: dict[str, EnterpriseIdp] = field(default_factory=dict)

    @property
    def configured(self) -> bool:
        """At least one IdP: the jwt-bearer grant is offered and advertised."""
        return bool(self.by_issuer)

    def get(self, issuer: object) -> EnterpriseIdp | None:
        """The IdP whose `issuer` is exactly `issuer` (simple string comparison, RFC 7519 §4.1.1)."""
        return self.by_issuer.get(issuer) if isinstance(issuer, str) else None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: object, *, production: bool) -> str | None:
    """Why `url` cannot name an IdP's issuer or key set: https only (http to a loopback host outside
    production, for the development IdP of `make run`), no fragment, no query, no credentials."""
    if not isinstance(url, str) or not url:
        return "must be a URL string"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "http" and _loopback(host) and not production:
        pass
    elif parts.scheme != "https":
        return "must be an https URL" + ("" if production else " (http only to a loopback host, in development)")
    if not host:
        return "has no host"
    if parts.fragment or "#" in url:
        return "must not have a fragment"
    if parts.query:
        return "must not have a query"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials"
    return None


def _strings(raw: dict[str, Any], key: str, where: str) -> frozenset[str]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise EnterpriseIdpsFileError(f"{where}: {key} must be a list of non-empty strings")
    return frozenset(value)


def _entry(raw: Any, index: int, production: bool) -> EnterpriseIdp:
    where = f"idp #{index + 1}"
    if not isinstance(raw, dict):
        raise EnterpriseIdpsFileError(f"{where}: must be a table")
    unknown = set(raw) - KNOWN_KEYS
    if unknown:
        raise EnterpriseIdpsFileError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    issuer = raw.get("issuer")
    problem = url_problem(issuer, production=production)
    if problem is not None:
        raise EnterpriseIdpsFileError(f"{where}: issuer {problem}")
    assert isinstance(issuer, str)
    where = f"idp {issuer!r}"
    jwks_uri = raw.get("jwks_uri")
    if jwks_uri is not None:
        problem = url_problem(jwks_uri, production=production)
        if problem is not None:
            raise EnterpriseIdpsFileError(f"{where}: jwks_uri {problem}")
    subject = raw.get("subject", "prefixed")
    if subject not in SUBJECT_MODES:
        raise EnterpriseIdpsFileError(f"{where}: subject must be one of {', '.join(SUBJECT_MODES)}")
    return EnterpriseIdp(issuer, jwks_uri, _strings(raw, "clients", where), subject)


def load_enterprise_idps(path: Path | None, *, production: bool) -> EnterpriseIdps:
    """The IdPs of the file at `path` (none when unset); EnterpriseIdpsFileError names the first problem."""
    if path is None:
        return EnterpriseIdps()
    entries = array_of_tables(path, "idp", EnterpriseIdpsFileError)
    if len(entries) > MAX_IDPS:
        raise EnterpriseIdpsFileError(f"{path}: at most {MAX_IDPS} [[idp]] entries")
    by_issuer: dict[str, EnterpriseIdp] = {}
    for index, raw in enumerate(entries):
        idp = _entry(raw, index, production)
        if idp.issuer in by_issuer:
            raise EnterpriseIdpsFileError(f"{path}: idp {idp.issuer!r} is listed twice")
        by_issuer[idp.issuer] = idp
    unchanged = [idp.issuer for idp in by_issuer.values() if idp.subject == "unchanged"]
    if len(unchanged) > 1:
        raise EnterpriseIdpsFileError(f"{path}: only one idp may keep subjects unchanged ({', '.join(unchanged)}): "
                                      "two IdPs could name different people with the same sub")
    return EnterpriseIdps(by_issuer)


def configured_idps(settings: Settings) -> EnterpriseIdps:
    """PROXY_ENTERPRISE_IDPS_FILE as `serve` and `check` load it; SettingsError names the problem."""
    try:
        idps = load_enterprise_idps(settings.enterprise_idps_file, production=settings.env == "production")
    except EnterpriseIdpsFileError as exc:
        raise SettingsError(f"PROXY_ENTERPRISE_IDPS_FILE: {exc}") from None
    if idps.configured and settings.access_token_mode == "upstream":
        raise SettingsError("PROXY_ENTERPRISE_IDPS_FILE needs PROXY_ACCESS_TOKEN_MODE=jwt: an ID-JAG brings no "
                            "upstream access token to hand through")
    return idps
