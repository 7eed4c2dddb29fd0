"""Abuse limits (OWASP API4:2023, RFC 7591 §5): fixed-window counters in Redis, 429 with Retry-After.

    endpoint     per source address and per client_id (PROXY_...)    in all (PROXY_...)
    /register    RATE_LIMIT_REGISTER_PER_MIN (no client yet)          MAX_REGISTRATIONS_PER_HOUR (valid ones)
    /authorize   RATE_LIMIT_AUTHORIZE_PER_MIN                         -
    /token       RATE_LIMIT_TOKEN_PER_MIN                             -

The source address is the TCP peer, unless the peer is one of PROXY_TRUSTED_PROXIES: then it is the
right-most X-Forwarded-For entry that is not a trusted proxy (each proxy appends the address it saw,
so everything left of that entry is whatever the client chose to send). A client behind an untrusted
peer cannot reset its counter by rotating X-Forwarded-For.

PROXY_RATE_LIMITS=off returns before any Redis command: a load test from one address measures the
facade, not the limiter. A fixed window lets up to twice the limit through across a window boundary;
that is the price of one INCR per bucket.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Literal

from aiohttp import web

from proxy.errors import RateLimited
from proxy.state import services
from proxy.store.store import digest

Endpoint = Literal["register", "authorize", "token"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MINUTE_S = 60
HOUR_S = 3600
MAX_HOPS = 32  # X-Forwarded-For entries looked at, right to left


@functools.lru_cache(maxsize=16)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _address(text: str) -> IPAddress | None:
    """An address from a peer or X-Forwarded-For entry; `[v6]:port` and `v4:port` forms accepted."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in networks)


def source_address(request: web.Request, trusted_proxies: tuple[str, ...]) -> str:
    """Who sent the request, as far as the trusted proxies vouch for it."""
    peer = _address(request.remote or "")
    if peer is None:
        return request.remote or "unknown"  # a unix socket: one bucket for all
    networks = _networks(trusted_proxies)
    if not networks or not _trusted(peer, networks):
        return str(peer)
    hops = [hop for header in request.headers.getall("X-Forwarded-For", ()) for hop in header.split(",")]
    address = peer
    for hop in reversed(hops[-MAX_HOPS:]):
        parsed = _address(hop)
        if parsed is None:
            break  # not an address: keep the nearest one a trusted proxy vouched for
        address = parsed
        if not _trusted(parsed, networks):
            break
    return str(address)


def _per_minute(request: web.Request, endpoint: Endpoint) -> int:
    settings = services(request).settings
    return {"register": settings.rate_limit_register_per_min,
            "authorize": settings.rate_limit_authorize_per_min,
            "token": settings.rate_limit_token_per_min}[endpoint]


async def _enforce(request: web.Request, buckets: list[tuple[str, int, int]]) -> None:
    """Count a hit in every (bucket, window, limit); raise RateLimited if any is over its limit."""
    counts = await services(request).store.hits([(bucket, window) for bucket, window, _ in buckets])
    waits = [left for (count, left), (_, _, limit) in zip(counts, buckets, strict=True) if count > limit]
    if waits:
        raise RateLimited(max(waits))


async def admit(request: web.Request, endpoint: Endpoint, client_id: str | None = None) -> None:
    """Count this request against its source address (and client, when known); 429 beyond the limit."""
    settings = services(request).settings
    if not settings.rate_limits:
        return
    limit = _per_minute(request, endpoint)
    buckets = [(f"{endpoint}:ip:{source_address(request, settings.trusted_proxies)}", MINUTE_S, limit)]
    if client_id:
        buckets.append((f"{endpoint}:client:{digest(client_id)[:32]}", MINUTE_S, limit))
    await _enforce(request, buckets)


async def admit_registration(request: web.Request) -> None:
    """The cap on registrations from everyone (each is a stored record): counted once it is valid."""
    settings = services(request).settings
    if not settings.rate_limits:
        return
    await _enforce(request, [("register:all", HOUR_S, settings.max_registrations_per_hour)])
