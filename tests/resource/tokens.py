"""Tokens for the resource-side tests, minted by the facade's own code (`proxy.token.mint`) with a
real `Keyset`, so the verifier is tested against exactly what the facade issues."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any, cast

from joserfc import jwk

from proxy.clients.directory import ClientDirectory
from proxy.clients.registry import ClientRegistry
from proxy.keys.keyset import Keyset, generate
from proxy.settings import Settings
from proxy.state import Services
from proxy.token import mint

ISSUER = "https://auth.example.com"
RESOURCE = "https://mcp.example.com/mcp"


@dataclass(frozen=True)
class Minter:
    """What `mint.access_token` reads of the services: the real settings and the real keyset."""

    settings: Settings
    keyset: Keyset
    # No store, no pre-registered clients, no metadata documents: the lifetime is PROXY_ACCESS_TOKEN_TTL_S.
    clients: ClientDirectory = field(default_factory=lambda: ClientDirectory(  # type: ignore[arg-type]
        store=None, registry=ClientRegistry(), cimd=None, key_sets=None))

    def mint(self, *, scope: str = "openid files:read", resource: str = RESOURCE, now: int | None = None,
             family: str = "fam-1") -> str:
        grant = {"sub": "user-1", "resource": resource, "client_id": "client-1", "auth_time": 1_700_000_000}
        token, _ = mint.access_token(cast(Services, self), grant, scope=scope, family=family,
                                     now=int(time.time()) if now is None else now, upstream=None)
        return token

    @property
    def public(self) -> jwk.KeySet:
        """The keys as a resource server gets them: the facade's /jwks document."""
        return jwk.KeySet.import_key_set(self.keyset.public_jwks)


def make_minter(*algs: str, ttl: int = 3600) -> Minter:
    settings = Settings(_env_file=None, issuer=ISSUER, upstream_issuer="https://idp.example.com",  # type: ignore[call-arg]
                        upstream_client_id="facade", upstream_client_secret="s",
                        access_token_ttl_s=ttl)
    return Minter(settings, Keyset([generate(alg) for alg in algs or ("RS256",)]))


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, body, _ = token.split(".")
    return (json.loads(base64.urlsafe_b64decode(head + "==")), json.loads(base64.urlsafe_b64decode(body + "==")))



__all__ = ["ISSUER", "RESOURCE", "Minter", "make_minter", "segments"]
