"""`oauth-facade check` for PROXY_CLIENTS_FILE: each pre-registered client's `jwks_uri` is fetched the way
/token will fetch it (the one SSRF-pinned fetcher, the same key-set rules), so a typo in the URL, a host
unreachable from here or a key set with private material shows before the client's first assertion."""

from __future__ import annotations

from dataclasses import dataclass, field

from proxy.clients.fetch import Fetcher, FetchFailed, FetchRefused
from proxy.clients.jwks import KeySetUnusable, public_key_set
from proxy.clients.registry import ClientRegistry


@dataclass
class Findings:
    """Notes for the operator, and problems that make `check` exit 1."""

    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


async def probe_key_sets(registry: ClientRegistry, fetcher: Fetcher) -> Findings:
    found = Findings()
    for client in registry.clients.values():
        uri = client.key_source.uri if client.key_source is not None else None
        if uri is None:
            continue  # no keys, or an inline jwks (validated when the file was read)
        where = f"PROXY_CLIENTS_FILE: client {client.client_id}: its jwks_uri {uri}"
        try:
            keys = public_key_set((await fetcher.fetch(uri)).body)
        except (FetchFailed, FetchRefused) as exc:
            found.problems.append(f"{where} could not be fetched: {exc}")
            continue
        except KeySetUnusable as exc:
            found.problems.append(f"{where} is unusable: {exc}")
            continue
        found.notes.append(f"client {client.client_id}: {len(keys.keys)} key(s) from {uri}")
    return found
