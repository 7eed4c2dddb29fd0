"""Resource-server credentials: who may call /introspect and the token-exchange grant, for which resources.

`PROXY_RESOURCE_SERVERS_FILE` (TOML, read once at start-up; a person edits it):

    [[resource_server]]
    id = "github-mcp"                              # the Basic username (or client_id with client_secret_post)
    secret_hash = "scrypt$14$8$1$…"                # `oauth-facade clients hash-secret`, never the secret
    resources = ["https://mcp.example.com/github"] # resources it owns: it introspects only their tokens
    token_exchange = true                          # may exchange their tokens for the user's upstream token

Secrets are checked with the pre-registered clients' scrypt helper (proxy/clients/secrets.py), in
constant time; a verified (id, secret) pair is remembered in memory (as a SHA-256) so a resource server
introspecting every request does not pay scrypt every time. `PROXY_INTROSPECTION_SECRET` keeps working
as before: any Basic username (or Bearer) with that secret may introspect every resource, never exchange.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from proxy.clients.basic import parse_basic_header
from proxy.clients.secrets import decoy_like, hash_problem, verify_secret_async
from proxy.clients.tomlfile import array_of_tables
from proxy.errors import InvalidClient
from proxy.resources import normalise
from proxy.settings import Settings

RESOURCE_SERVER_ID = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")
KNOWN_KEYS = frozenset({"id", "secret_hash", "resources", "token_exchange"})
LEGACY_ID = "introspection-secret"  # how PROXY_INTROSPECTION_SECRET's holder is named in logs
VERIFIED_CACHE = 1024


class ResourceServersFileError(ValueError):
    """A problem in the resource servers file, phrased for the operator (entry, key)."""


@dataclass(frozen=True)
class ResourceServer:
    id: str
    resources: frozenset[str]  # normalised; empty with `every_resource`
    token_exchange: bool = False
    secret_hash: str | None = field(default=None, repr=False)
    every_resource: bool = False  # the legacy single introspection secret

    def owns(self, resource: object) -> bool:
        """True when a token whose `aud` is `resource` is this resource server's to see."""
        if self.every_resource:
            return True
        audiences = resource if isinstance(resource, list) else [resource]
        return any(isinstance(aud, str) and normalise(aud) in self.resources for aud in audiences)


def _entry(raw: Any, index: int, known_resources: frozenset[str]) -> ResourceServer:
    where = f"resource_server #{index + 1}"
    if not isinstance(raw, dict):
        raise ResourceServersFileError(f"{where}: must be a table")
    unknown = set(raw) - KNOWN_KEYS
    if unknown:
        raise ResourceServersFileError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    server_id = raw.get("id")
    if not isinstance(server_id, str) or not RESOURCE_SERVER_ID.match(server_id):
        raise ResourceServersFileError(f"{where}: id must be 1-128 characters of [A-Za-z0-9._~-]")
    where = f"resource_server {server_id!r}"
    secret_hash = raw.get("secret_hash")
    if not isinstance(secret_hash, str):
        raise ResourceServersFileError(f"{where}: secret_hash is required")
    problem = hash_problem(secret_hash)
    if problem is not None:
        raise ResourceServersFileError(f"{where}: secret_hash {problem}")
    resources = raw.get("resources")
    if not isinstance(resources, list) or not resources or not all(isinstance(r, str) for r in resources):
        raise ResourceServersFileError(f"{where}: resources must be a non-empty list of URLs")
    owned = frozenset(normalise(r) for r in resources)
    foreign = sorted(owned - known_resources)
    if foreign:
        raise ResourceServersFileError(f"{where}: {foreign[0]} is not one of PROXY_RESOURCES")
    exchange = raw.get("token_exchange", False)
    if not isinstance(exchange, bool):
        raise ResourceServersFileError(f"{where}: token_exchange must be true or false")
    return ResourceServer(server_id, owned, exchange, secret_hash)


def load_resource_servers(settings: Settings) -> ResourceServers:
    """The named resource servers of PROXY_RESOURCE_SERVERS_FILE, plus the legacy introspection secret."""
    named: dict[str, ResourceServer] = {}
    path = settings.resource_servers_file
    if path is not None:
        entries = array_of_tables(path, "resource_server", ResourceServersFileError)
        known = frozenset(normalise(r) for r in settings.effective_resources)
        for index, raw in enumerate(entries):
            server = _entry(raw, index, known)
            if server.id in named:
                raise ResourceServersFileError(f"resource_server {server.id!r} is listed twice")
            named[server.id] = server
    legacy = settings.introspection_secret.get_secret_value() if settings.introspection_secret else None
    return ResourceServers(named, legacy)


def claimed_id(header: str, form: dict[str, str]) -> str | None:
    """Who the caller (its Authorization `header`, '' if none, and its `form`) says it is, before any
    secret is checked (for the rate limits); None if unsaid."""
    if header[:6].lower() == "basic ":
        return parse_basic_header(header)[0]
    return form.get("client_id") or None


@dataclass
class ResourceServers:
    named: dict[str, ResourceServer] = field(default_factory=dict)
    legacy_secret: str | None = field(default=None, repr=False)
    _verified: dict[str, str] = field(default_factory=dict, repr=False)  # id -> sha256 of a verified secret

    @cached_property
    def _decoy(self) -> str | None:
        """Checked (and ignored) for an unknown id, so timing does not tell which ids exist (issue 22 #7)."""
        hashes = [server.secret_hash for server in self.named.values() if server.secret_hash]
        return decoy_like(hashes[0]) if hashes else None

    @property
    def offers_introspection(self) -> bool:
        return bool(self.named) or self.legacy_secret is not None

    @property
    def offers_token_exchange(self) -> bool:
        return any(server.token_exchange for server in self.named.values())

    async def _check(self, server: ResourceServer, secret: str) -> bool:
        assert server.secret_hash is not None
        fingerprint = hashlib.sha256(secret.encode()).hexdigest()
        remembered = self._verified.get(server.id)
        if remembered is not None and hmac.compare_digest(remembered, fingerprint):
            return True
        if not await verify_secret_async(secret, server.secret_hash):
            return False
        if len(self._verified) >= VERIFIED_CACHE:
            self._verified.clear()
        self._verified[server.id] = fingerprint
        return True

    def _legacy(self, secret: str) -> ResourceServer | None:
        if self.legacy_secret is None or not hmac.compare_digest(secret.encode(), self.legacy_secret.encode()):
            return None
        return ResourceServer(LEGACY_ID, frozenset(), every_resource=True)

    async def authenticate(self, header: str, form: dict[str, str], *, bearer: bool = False) -> ResourceServer:
        """The calling resource server, from its Authorization `header` ('' if none) and `form`: Basic (RFC
        6749 §2.3.1), client_secret_post, or (legacy secret only, /introspect only) Bearer. Anyone else,
        registered MCP clients included, is 401 invalid_client."""
        if header[:7].lower() == "bearer ":
            legacy = self._legacy(header[7:].strip()) if bearer else None
            if legacy is None:
                raise InvalidClient("Authenticate as a resource server.", challenge=False)
            return legacy
        if header:
            server_id, secret = parse_basic_header(header)
            challenge = True
        elif form.get("client_id") and form.get("client_secret"):
            server_id, secret, challenge = form["client_id"], form["client_secret"], False
        else:
            raise InvalidClient("Authenticate as a resource server (Basic credentials).", challenge=False)
        server = self.named.get(server_id)
        if server is not None and await self._check(server, secret):
            return server
        if server is None and self._decoy is not None:  # an unknown id costs what a wrong secret costs
            await verify_secret_async(secret, self._decoy)
        legacy = self._legacy(secret)
        if legacy is not None:
            return legacy
        raise InvalidClient("Resource-server authentication failed.", challenge=challenge)
