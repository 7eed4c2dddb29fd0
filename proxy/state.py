"""The services a request handler reaches, built once per app (typed aiohttp state)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from proxy.clients.directory import ClientDirectory
from proxy.clients.jwks import KeySets
from proxy.clients.resource_servers import ResourceServers
from proxy.enterprise.runtime import Enterprise
from proxy.keys import Keyset
from proxy.settings import Settings
from proxy.store import Store
from proxy.upstream import Upstream


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    keyset: Keyset
    upstream: Upstream
    scopes: tuple[str, ...]
    resources: dict[str, str]
    consent_secret: bytes
    clients: ClientDirectory  # who a client_id is: pre-registered, CIMD URL or DCR registration
    resource_servers: ResourceServers = field(default_factory=ResourceServers)  # /introspect, token exchange
    enterprise: Enterprise = field(default_factory=Enterprise)  # trusted enterprise IdPs (jwt-bearer, ID-JAG)

    @property
    def key_sets(self) -> KeySets:
        """The shared cache of key sets named by jwks_uri (clients' and enterprise IdPs')."""
        return self.clients.key_sets


SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
SERVICES: web.AppKey[Services] = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
