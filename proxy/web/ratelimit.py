"""Abuse limits (OWASP API4:2023, RFC 7591 §5): fixed-window counters in Redis, 429 with Retry-After.

    endpoint      counted per        limit: PROXY_RATE_LIMIT_...
    /register     address; network   REGISTER_PER_MIN; REGISTER_PER_NETWORK_PER_HOUR
    /authorize    address            AUTHORIZE_PER_MIN
    /consent      address            AUTHORIZE_PER_MIN
    /callback     address            AUTHORIZE_PER_MIN
    /token        address            TOKEN_PER_MIN
    /revoke       address            TOKEN_PER_MIN
    /introspect   address            INTROSPECT_PER_MIN
    /userinfo     address            USERINFO_PER_MIN
    wrong credentials at /introspect, /metrics and /admin/*: per address, AUTH_FAILURES_PER_MIN; wrong client or
    resource-server secrets at /token: per (client, address), AUTH_FAILURES_PER_MIN. Both are checked
    before the credential, so an address over the limit learns nothing more, not even from the right
    secret.

No bucket is counted per client across addresses before the request has proved anything: a client_id
is shared (Claude's metadata-document URL by all its users, a connector by an organisation, a resource
server by its replicas), so such a bucket let one address lock every user of the client out (issue 22
finding 2). A secret guessed from many addresses is bounded per address, and by scrypt's cost.

/register, /authorize and /token count in their handlers (they know the client); the others in the
middleware (`admit_route`), before the handler runs.

A network is the address's IPv4 /24 or IPv6 /56: what one subscriber, host or small cloud tenant
typically holds, so an attacker's many addresses count as few networks and no set of addresses one
actor can plausibly hold refuses anyone else. Networks are counted per hour: the budget bounds what
one network can store (a registration lives up to a day unused), the per-address minute limits bursts.

No limit counts everyone together: a global cap that refuses lets one actor lock out all registrants.
PROXY_MAX_REGISTRATIONS_PER_HOUR bounds storage instead: registrations within it are kept
PROXY_UNUSED_CLIENT_TTL_S (at most a day) until their first sign-in; beyond it they are still accepted
but kept only two transaction lifetimes unless used, so a flood costs its rate times that, and a real
client, which signs in right after registering, does not notice.

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
from proxy.log import get_logger
from proxy.settings import Settings
from proxy.state import services
from proxy.store.store import digest

Endpoint = Literal["register", "authorize", "token"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MINUTE_S = 60
HOUR_S = 3600
MAX_HOPS = 32  # X-Forwarded-For entries looked at, right to left
IPV4_NETWORK = 24
IPV6_NETWORK = 56
# Endpoints limited per address by the middleware (the handler knows no client before it has parsed).
ADDRESS_LIMITED = frozenset({"decide", "callback", "revoke", "introspect", "userinfo"})
# Endpoints that check a shared credential: wrong ones are counted per address.
CREDENTIAL_CHECKED = frozenset({"introspect", "metrics", "admin_grants", "admin_revoke"})

log = get_logger()


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


def network_of(address: str) -> str:
    """The IPv4 /24 or IPv6 /56 an address belongs to; anything else (a unix socket) is its own network."""
    parsed = _address(address)
    if parsed is None:
        return address
    prefix = IPV4_NETWORK if parsed.version == 4 else IPV6_NETWORK
    return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False))


def _per_minute(settings: Settings, endpoint: str) -> int:
    return {"register": settings.rate_limit_register_per_min,
            "authorize": settings.rate_limit_authorize_per_min,
            "decide": settings.rate_limit_authorize_per_min,
            "callback": settings.rate_limit_authorize_per_min,
            "token": settings.rate_limit_token_per_min,
            "revoke": settings.rate_limit_token_per_min,
            "introspect": settings.rate_limit_introspect_per_min,
            "userinfo": settings.rate_limit_userinfo_per_min}[endpoint]


async def _enforce(request: web.Request, buckets: list[tuple[str, int, int]],
                   peeked: list[tuple[str, int, int]] | None = None) -> None:
    """Count a hit in every (bucket, window, limit) and read the `peeked` ones without counting;
    raise RateLimited if any is over its limit (a peeked one: at it)."""
    peeked = peeked or []
    counts = await services(request).store.hits([(bucket, window) for bucket, window, _ in buckets],
                                                peeked=[(bucket, window) for bucket, window, _ in peeked])
    limits = [limit for _, _, limit in buckets] + [limit - 1 for _, _, limit in peeked]
    waits = [left for (count, left), limit in zip(counts, limits, strict=True) if count > limit]
    if waits:
        raise RateLimited(max(waits))


def _client_failures(client_id: str, address: str) -> str:
    return f"auth-failed:client:{digest(client_id)[:32]}:ip:{address}"


async def admit(request: web.Request, endpoint: Endpoint, client_id: str | None = None) -> None:
    """Count this request against its source address; 429 beyond the limit. /register is counted against
    the address's network too. At /token, `client_id` (the one claimed, before its secret is checked)
    names the (client, address) wrong-secret gate, read here and counted by `client_credential_failed`."""
    settings = services(request).settings
    if not settings.rate_limits:
        return
    limit = _per_minute(settings, endpoint)
    address = source_address(request, settings.trusted_proxies)
    buckets = [(f"{endpoint}:ip:{address}", MINUTE_S, limit)]
    if endpoint == "register":
        buckets.append((f"register:net:{network_of(address)}", HOUR_S,
                        settings.rate_limit_register_per_network_per_hour))
    peeked = ([(_client_failures(client_id, address), MINUTE_S, settings.rate_limit_auth_failures_per_min)]
              if endpoint == "token" and client_id else [])
    await _enforce(request, buckets, peeked)


async def client_credential_failed(request: web.Request, client_id: str) -> None:
    """A wrong secret for `client_id` (a client or a resource server) at /token: counted against that
    client from this address only, so the client's users elsewhere are never refused for it."""
    settings = services(request).settings
    if settings.rate_limits:
        address = source_address(request, settings.trusted_proxies)
        await services(request).store.hits([(_client_failures(client_id, address), MINUTE_S)])


async def admit_route(request: web.Request, endpoint: str) -> None:
    """The middleware's limits, before the handler runs: per address for the endpoints that have no
    client to count yet, and the wrong-credential gate for those that check a shared secret."""
    if endpoint not in ADDRESS_LIMITED and endpoint not in CREDENTIAL_CHECKED:
        return  # before any lookup: the mounted development IdP's routes have no services
    settings = services(request).settings
    if not settings.rate_limits:
        return
    address = source_address(request, settings.trusted_proxies)
    buckets = ([(f"{endpoint}:ip:{address}", MINUTE_S, _per_minute(settings, endpoint))]
               if endpoint in ADDRESS_LIMITED else [])
    peeked = ([(f"auth-failed:ip:{address}", MINUTE_S, settings.rate_limit_auth_failures_per_min)]
              if endpoint in CREDENTIAL_CHECKED else [])
    await _enforce(request, buckets, peeked)


async def credential_failed(request: web.Request, endpoint: str) -> None:
    """Count a wrong credential at an endpoint that checks one (the handler answered 401)."""
    if endpoint not in CREDENTIAL_CHECKED:
        return
    settings = services(request).settings
    if settings.rate_limits:
        address = source_address(request, settings.trusted_proxies)
        await services(request).store.hits([(f"auth-failed:ip:{address}", MINUTE_S)])


async def registration_lifetime(request: web.Request) -> int:
    """How long a new, valid registration is kept before its first sign-in (see the module docstring):
    counted against PROXY_MAX_REGISTRATIONS_PER_HOUR, which shortens lifetimes and never refuses."""
    settings = services(request).settings
    unused = min(settings.unused_client_ttl_s, settings.client_ttl_s)
    if not settings.rate_limits:
        return unused
    [(count, _)] = await services(request).store.hits([("register:all", HOUR_S)])
    if count <= settings.max_registrations_per_hour:
        return unused
    if count == settings.max_registrations_per_hour + 1:  # once an hour, not once a registration
        log.warning("registration.over_cap", cap=settings.max_registrations_per_hour,
                    hint="new registrations are kept only until their sign-in window ends")
    return min(unused, 2 * settings.transaction_ttl_s)
