"""Where an enterprise IdP publishes its keys: `jwks_uri` from the file, else from the issuer's own
discovery document (OpenID Connect Discovery §4, then RFC 8414 §3), fetched with the facade's one
SSRF-pinned fetcher (proxy/clients/fetch.py). The document must name the issuer byte for byte
(RFC 8414 §3.3), so a host cannot speak for another issuer. Answers are kept in process memory for
DISCOVERY_TTL_S; a failure is never kept, so the next assertion tries again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from proxy.clients.fetch import Fetcher, FetchFailed, FetchRefused, Resolve
from proxy.enterprise.idps import EnterpriseIdp, url_problem
from proxy.settings import Settings

DISCOVERY_TTL_S = 3600
FETCH_MAX_BYTES = 64 * 1024  # discovery documents and key sets (Entra's JWKS carries x5c chains)


class DiscoveryFailed(Exception):
    """The IdP's key-set URL could not be learned; the message names why, for logs and `check`."""


def discovery_urls(issuer: str) -> list[str]:
    """OIDC's appended form first (Okta, Entra), then RFC 8414's inserted form for an issuer with a path."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    urls = [issuer.rstrip("/") + "/.well-known/openid-configuration"]
    if path:
        urls.append(urlunsplit((parts.scheme, parts.netloc, "/.well-known/oauth-authorization-server" + path, "", "")))
    else:
        urls.append(issuer.rstrip("/") + "/.well-known/oauth-authorization-server")
    return urls


@dataclass
class JwksLocator:
    fetcher: Fetcher
    production: bool
    _known: dict[str, tuple[str, float]] = field(default_factory=dict)

    async def jwks_uri(self, idp: EnterpriseIdp) -> str:
        if idp.jwks_uri is not None:
            return idp.jwks_uri
        known = self._known.get(idp.issuer)
        if known is not None and known[1] > time.monotonic():
            return known[0]
        reasons: list[str] = []
        for url in discovery_urls(idp.issuer):
            try:
                fetched = await self.fetcher.fetch(url)
            except (FetchFailed, FetchRefused) as exc:
                reasons.append(f"{url}: {exc}")
                continue
            uri = self._jwks_uri_of(idp.issuer, fetched.body)
            self._known[idp.issuer] = (uri, time.monotonic() + DISCOVERY_TTL_S)
            return uri
        raise DiscoveryFailed("; ".join(reasons))

    def _jwks_uri_of(self, issuer: str, body: bytes) -> str:
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise DiscoveryFailed("the discovery document is not JSON") from exc
        if not isinstance(document, dict) or document.get("issuer") != issuer:
            raise DiscoveryFailed("the discovery document names another issuer")
        uri = document.get("jwks_uri")
        problem = url_problem(uri, production=self.production)
        if problem is not None:
            raise DiscoveryFailed(f"the discovery document's jwks_uri {problem}")
        assert isinstance(uri, str)
        return uri


def locator_for(settings: Settings, resolve: Resolve) -> JwksLocator:
    """The one SSRF-pinned fetcher (as for CIMD documents: same timeout, development hosts and CA file),
    with room for an IdP's discovery document and key set."""
    fetcher = Fetcher(timeout_s=settings.cimd_fetch_timeout_s, dev_hosts=settings.cimd_dev_hosts,
                      ca_file=settings.cimd_ca_file, resolve=resolve, max_bytes=FETCH_MAX_BYTES)
    return JwksLocator(fetcher, production=settings.env == "production")
