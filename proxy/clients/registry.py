"""Operator-defined clients from `PROXY_CLIENTS_FILE` (TOML, read once at start-up).

    [[client]]
    id = "claude-connector"                 # [A-Za-z0-9._~-], never https://… (that is CIMD)
    name = "Claude"
    redirect_uris = ["https://claude.ai/api/mcp/auth_callback"]
    secret_hash = "scrypt$14$8$1$…"         # optional: `oauth-facade clients hash-secret`
    scopes = ["openid", "offline_access"]   # optional: default every scope the facade grants
    resources = ["https://mcp.example.com/mcp"]  # optional: default every configured resource
    grant_types = ["authorization_code", "refresh_token"]  # + "client_credentials" (needs a credential),
                                            # + "urn:ietf:params:oauth:grant-type:jwt-bearer" (ID-JAG)
    skip_consent = false                    # first-party clients only
    access_token_ttl_s = 28800              # optional: this client's access-token lifetime
    # instead of secret_hash, private_key_jwt (RFC 7523 §2.2): the client's public keys, one of
    jwks_uri = "https://agent.example.com/jwks.json"
    jwks = '{"keys": [...]}'                # or inline (a JSON string, or a TOML table with `keys`)

A client with `secret_hash` is confidential: /token requires its secret (client_secret_basic or
client_secret_post). claude.ai's "OAuth Client ID / Client Secret" connector fields use this. A client
with `jwks_uri` or `jwks` is confidential too: /token and /revoke require a client assertion signed by
one of its keys (proxy/token/clientauth.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy.clients.document import infer_application_type
from proxy.clients.jwks import KeySetUnusable, KeySource, jwks_uri_problem, public_jwks, public_key_set
from proxy.clients.redirect_uris import problem
from proxy.clients.secrets import hash_problem
from proxy.clients.tomlfile import array_of_tables

CLIENT_ID = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # ID-JAG (PROXY_ENTERPRISE_IDPS_FILE)
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", JWT_BEARER)
KNOWN_KEYS = frozenset({"id", "name", "redirect_uris", "secret_hash", "scopes", "resources", "grant_types",
                        "skip_consent", "jwks_uri", "jwks", "access_token_ttl_s"})
MAX_ACCESS_TOKEN_TTL_S = 366 * 86400


class ClientsFileError(ValueError):
    """A problem in the clients file, phrased for the operator (file, entry, key)."""


@dataclass(frozen=True)
class PreRegisteredClient:
    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    secret_hash: str | None
    scopes: tuple[str, ...] | None
    resources: tuple[str, ...] | None
    grant_types: tuple[str, ...]
    skip_consent: bool
    key_source: KeySource | None = None  # private_key_jwt: where its public keys are
    access_token_ttl_s: int | None = None  # None: PROXY_ACCESS_TOKEN_TTL_S

    @property
    def confidential(self) -> bool:
        return self.secret_hash is not None or self.key_source is not None

    @property
    def auth_method(self) -> str:
        if self.key_source is not None:
            return "private_key_jwt"
        return "client_secret_basic" if self.secret_hash is not None else "none"

    def record(self) -> dict[str, Any]:
        """The client as the rest of the facade sees one (the shape of a registration)."""
        record: dict[str, Any] = {
            "client_id": self.client_id, "client_name": self.name, "redirect_uris": list(self.redirect_uris),
            "grant_types": list(self.grant_types), "response_types": ["code"],
            "token_endpoint_auth_method": self.auth_method,
            "application_type": infer_application_type(self.redirect_uris) if self.redirect_uris else "web",
            "preregistered": True,
        }
        if self.skip_consent:
            record["skip_consent"] = True
        if self.scopes is not None:
            record["allowed_scopes"] = list(self.scopes)
        if self.resources is not None:
            record["allowed_resources"] = list(self.resources)
        return record


@dataclass(frozen=True)
class ClientRegistry:
    clients: dict[str, PreRegisteredClient] = field(default_factory=dict)

    def get(self, client_id: str) -> PreRegisteredClient | None:
        return self.clients.get(client_id)

    @property
    def has_confidential(self) -> bool:
        return any(client.confidential for client in self.clients.values())

    @property
    def has_private_key_jwt(self) -> bool:
        return any(client.key_source is not None for client in self.clients.values())


def _strings(entry: dict[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ClientsFileError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def _client(entry: Any, where: str, scopes: tuple[str, ...], resources: tuple[str, ...]) -> PreRegisteredClient:
    if not isinstance(entry, dict):
        raise ClientsFileError(f"{where}: must be a table")
    unknown = set(entry) - KNOWN_KEYS
    if unknown:
        raise ClientsFileError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    client_id, name = entry.get("id"), entry.get("name")
    if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
        raise ClientsFileError(f"{where}: id must be 1-128 characters of [A-Za-z0-9._~-]")
    where = f"{where} ({client_id})"
    if not isinstance(name, str) or not name.strip():
        raise ClientsFileError(f"{where}: name is required")
    redirect_uris = _strings(entry, "redirect_uris", where) or ()
    for uri in redirect_uris:
        reason = problem(uri)
        if reason is not None:
            raise ClientsFileError(f"{where}: redirect URI {uri!r} {reason}")
    secret_hash = entry.get("secret_hash")
    if secret_hash is not None:
        reason = hash_problem(secret_hash) if isinstance(secret_hash, str) else "must be a string"
        if reason is not None:
            raise ClientsFileError(f"{where}: secret_hash {reason}")
    key_source = _key_source(entry, where)
    if key_source is not None and secret_hash is not None:
        raise ClientsFileError(f"{where}: give secret_hash or jwks_uri/jwks, not both (one authentication method)")
    ttl = entry.get("access_token_ttl_s")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 < ttl <= MAX_ACCESS_TOKEN_TTL_S):
        raise ClientsFileError(f"{where}: access_token_ttl_s must be a whole number of seconds, 1 to a year")
    grant_types = _strings(entry, "grant_types", where) or ("authorization_code", "refresh_token")
    for grant in grant_types:
        if grant not in GRANT_TYPES:
            raise ClientsFileError(f"{where}: grant type {grant!r} is not one of {', '.join(GRANT_TYPES)}")
    if "client_credentials" in grant_types and secret_hash is None and key_source is None:
        raise ClientsFileError(f"{where}: client_credentials needs a secret_hash or jwks_uri/jwks (a confidential "
                               "client)")
    if "authorization_code" in grant_types and not redirect_uris:
        raise ClientsFileError(f"{where}: authorization_code needs redirect_uris")
    client_scopes = _strings(entry, "scopes", where)
    for scope in client_scopes or ():
        if scope not in scopes:
            raise ClientsFileError(f"{where}: scope {scope!r} is not in PROXY_SCOPES")
    client_resources = _strings(entry, "resources", where)
    for resource in client_resources or ():
        if resource not in resources:
            raise ClientsFileError(f"{where}: resource {resource!r} is not in PROXY_RESOURCES")
    skip = entry.get("skip_consent", False)
    if not isinstance(skip, bool):
        raise ClientsFileError(f"{where}: skip_consent must be true or false")
    return PreRegisteredClient(client_id, name.strip(), redirect_uris, secret_hash, client_scopes,
                               client_resources, grant_types, skip, key_source, ttl)


def _key_source(entry: dict[str, Any], where: str) -> KeySource | None:
    """private_key_jwt: a `jwks_uri` (fetched through the SSRF-pinned fetcher) or an inline `jwks` (a
    JSON string or a TOML table), public keys only."""
    jwks_uri, jwks = entry.get("jwks_uri"), entry.get("jwks")
    if jwks_uri is None and jwks is None:
        return None
    if jwks_uri is not None and jwks is not None:
        raise ClientsFileError(f"{where}: give jwks_uri or jwks, not both")
    if jwks_uri is not None:
        problem = jwks_uri_problem(jwks_uri)
        if problem is not None:
            raise ClientsFileError(f"{where}: jwks_uri {problem}")
        return KeySource(uri=jwks_uri)
    try:
        keys = public_key_set(jwks)
    except KeySetUnusable as exc:
        raise ClientsFileError(f"{where}: jwks: {exc}") from None
    return KeySource(inline=json.dumps(public_jwks(keys)))


def load_registry(path: Path | None, *, scopes: tuple[str, ...], resources: tuple[str, ...]) -> ClientRegistry:
    """The clients in `path` (none when unset); ClientsFileError names the first problem."""
    if path is None:
        return ClientRegistry()
    entries = array_of_tables(path, "client", ClientsFileError)
    clients: dict[str, PreRegisteredClient] = {}
    for index, entry in enumerate(entries, start=1):
        client = _client(entry, f"{path}: client #{index}", scopes, resources)
        if client.client_id in clients:
            raise ClientsFileError(f"{path}: client id {client.client_id!r} appears twice")
        clients[client.client_id] = client
    return ClientRegistry(clients)
