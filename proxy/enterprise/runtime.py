"""What the jwt-bearer grant needs at run time: the trusted IdPs, where their keys are (the shared
key-set cache of proxy/clients/jwks.py behind each IdP's located `jwks_uri`), and the store that spends
each assertion's `jti`. Built once per app by app.py; empty when no IdP is configured."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proxy.clients.jwks import KeySets
from proxy.enterprise.discovery import JwksLocator
from proxy.enterprise.idps import EnterpriseIdps


@dataclass
class Enterprise:
    idps: EnterpriseIdps = field(default_factory=EnterpriseIdps)
    locator: JwksLocator | None = None
    key_sets: KeySets | None = None
    replay: Any = None  # proxy.store.Store: use_jti (SET NX PX), atomic across replicas
