"""`oauth-facade check` for PROXY_ENTERPRISE_IDPS_FILE: each IdP's key set is located (its `jwks_uri`,
else its discovery document) and fetched the way the jwt-bearer grant will fetch it, so a typo in an
issuer or an IdP that is unreachable from here shows before the first enterprise user arrives."""

from __future__ import annotations

from proxy.clients.fetch import FetchFailed, FetchRefused
from proxy.clients.jwks import KeySetUnusable, public_key_set
from proxy.clients.probe import Findings
from proxy.enterprise.discovery import DiscoveryFailed, JwksLocator
from proxy.enterprise.idps import EnterpriseIdps


async def probe(idps: EnterpriseIdps, locator: JwksLocator) -> Findings:
    found = Findings()
    for idp in idps.by_issuer.values():
        try:
            uri = await locator.jwks_uri(idp)
            fetched = await locator.fetcher.fetch(uri)
            keys = public_key_set(fetched.body)
        except DiscoveryFailed as exc:
            found.problems.append(f"PROXY_ENTERPRISE_IDPS_FILE: idp {idp.issuer}: no jwks_uri in its discovery "
                                  f"document ({exc}); set jwks_uri")
            continue
        except (FetchFailed, FetchRefused) as exc:
            found.problems.append(f"PROXY_ENTERPRISE_IDPS_FILE: idp {idp.issuer}: its key set could not be "
                                  f"fetched: {exc}")
            continue
        except KeySetUnusable as exc:
            found.problems.append(f"PROXY_ENTERPRISE_IDPS_FILE: idp {idp.issuer}: its key set is unusable: {exc}")
            continue
        who = "any client" if not idp.clients else ", ".join(sorted(idp.clients))
        found.notes.append(f"enterprise idp {idp.issuer}: {len(keys.keys)} key(s) from {uri}; presented by {who}; "
                           f"subjects {idp.subject}")
    return found
