"""Which IP addresses a client metadata document may be fetched from: global unicast only.

draft-ietf-oauth-client-id-metadata-document-03 §8.6 (SSRF): the AS MUST NOT fetch a URL that resolves
to a special-use address (RFC 6890). Python's `is_global` misses some of them (NAT64, 6to4, some
multicast), so the registry's blocks are listed here, and addresses that embed an IPv4 address
(IPv4-mapped, NAT64, 6to4, Teredo) are refused outright: the embedded address is what a translator
on the path would connect to.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# RFC 6890 and the IANA special-purpose registries (plus RFC 6598 CGNAT, RFC 5737/3849/9637 documentation).
SPECIAL_USE = tuple(ipaddress.ip_network(block) for block in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24", "192.88.99.0/24",
    "192.168.0.0/16", "192.175.48.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "::/96", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64",
    "2001::/23", "2001:db8::/32", "2002::/16", "2620:4f:8000::/48", "3fff::/20", "5f00::/16",
    "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
))


def refusal(address: str | IPAddress) -> str | None:
    """Why a document must not be fetched from `address`, or None when it is global unicast."""
    try:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "a scoped (link-local) IPv6 address"
        if ip.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        if ip.sixtofour is not None or ip.teredo is not None:
            return "an IPv6 transition address embedding IPv4 (6to4/Teredo)"
    for block in SPECIAL_USE:
        if ip.version == block.version and ip in block:
            return f"special-use ({block})"
    if ip.is_multicast or ip.is_reserved or ip.is_private or ip.is_loopback or ip.is_link_local:
        return "special-use"
    if not ip.is_global:
        return "not globally routable"
    return None
