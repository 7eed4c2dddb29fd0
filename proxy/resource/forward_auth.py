"""Forward-auth: nginx `auth_request`, Traefik ForwardAuth and Caddy `forward_auth` ask here first.

The proxy sends the client's headers and says what the original request was (`X-Forwarded-Method`,
`-Host`, `-Proto`, `-Uri`, or nginx's `X-Original-URI`); those are believed only from
PROXY_TRUSTED_PROXIES. The original (host, path) is mapped to a configured resource, never made into
an audience: an unknown one is refused. 200 carries the identity headers for the proxy to copy to the
MCP server; 401/403 carry the challenge (nginx passes on only 401 and 403, so every refusal is one).

Per-tool policy sees only `Mcp-Method`/`Mcp-Name` (a proxy forwards headers, not bodies); the MCP server
must refuse a body that disagrees with them (MCP 2026-07-28, which SDK servers do). A POST without
`Mcp-Method` (clients of earlier revisions) could be any call, so it needs every policy scope: fail closed.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import unquote, urlsplit

from aiohttp import web

from proxy.resource import identity
from proxy.resource.guard import GUARD, Refusal, admit, identity_of
from proxy.resource.messages import decode_header_value

_DOT_SEGMENT = re.compile(r"(^|/)\.\.?(/|$)")
_SLASHES = re.compile(r"/{2,}")


def routed_path(path: str) -> str | None:
    """The raw request path as nginx and Caddy route it: every %-escape decoded (`%61`, `%2F` included),
    runs of slashes merged. None when no proxy could route it as one path: an escape that is not UTF-8,
    or a dot segment, raw or encoded (the proxies resolve them; refusing is simpler than agreeing).

    Judging the raw bytes let `/mcp/%61dmin` and `/mcp//admin` pass as `/mcp` while both proxies route
    them to a `/mcp/admin` location (issue 22 finding 1)."""
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError:
        return None
    if _DOT_SEGMENT.search(decoded):
        return None
    return _SLASHES.sub("/", decoded)


def _trusted_peer(request: web.Request, networks: tuple[str, ...]) -> bool:
    try:
        peer = ipaddress.ip_address((request.remote or "").strip("[]"))
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    return any(peer in ipaddress.ip_network(entry, strict=False) for entry in networks)


def _needed(request: web.Request, method: str) -> tuple[str, ...]:
    policy = request.app[GUARD].policy
    mcp_method = request.headers.get("Mcp-Method")
    name = request.headers.get("Mcp-Name")
    # Exactly `tools/call` with a name is judged by that tool; any other spelling of it, or a call that
    # names no tool, needs every tool's scopes (fail closed: the backend may read the body, not these).
    if mcp_method is not None and not (mcp_method.lower() == "tools/call" and (mcp_method != "tools/call"
                                                                               or name is None)):
        return policy.needed([(mcp_method, decode_header_value(name) if name is not None else None)])
    if (method == "POST" or mcp_method is not None) and policy.tool_scopes:
        return policy.needed([("tools/call", tool) for tool in policy.tool_scopes])
    return ()


def _calls(request: web.Request, method: str) -> list[tuple[str, str | None]] | None:
    """The (method, tool) the access policy judges, as `_needed` reads them: None when the request could
    be any call (a POST without `Mcp-Method`, a tools/call naming no tool or spelled otherwise)."""
    mcp_method = request.headers.get("Mcp-Method")
    name = request.headers.get("Mcp-Name")
    if mcp_method is None:
        return None if method == "POST" else []
    if mcp_method.lower() == "tools/call" and (mcp_method != "tools/call" or name is None):
        return None
    return [(mcp_method, decode_header_value(name) if name is not None else None)]


async def forward_auth(request: web.Request) -> web.Response:
    guard = request.app[GUARD]
    if not _trusted_peer(request, guard.settings.trusted_proxies):
        return Refusal(403, "access_denied", "Forward-auth answers only the proxies in PROXY_TRUSTED_PROXIES."
                       ).response()
    if any(len(request.headers.getall(name, ())) > 1
           for name in ("X-Forwarded-Uri", "X-Original-URI", "X-Forwarded-Host", "Mcp-Method", "Mcp-Name")):
        return Refusal(400, "invalid_request", "A forwarded or MCP routing header was sent twice.").response()
    uris = {value for value in (request.headers.get("X-Forwarded-Uri"), request.headers.get("X-Original-URI"))
            if value is not None}
    if len(uris) > 1:
        # nginx's auth_request passes the client's own headers on: one the proxy did not set is the client's.
        return Refusal(403, "invalid_request", "X-Forwarded-Uri and X-Original-URI disagree.").response()
    uri = next(iter(uris), "")
    host = request.headers.get("X-Forwarded-Host") or request.host
    if not uri.startswith("/") or uri.startswith("//"):
        # `//other/mcp`: urlsplit reads `other` as a host and `/mcp` as the path; nginx routes `/other/mcp`.
        return Refusal(403, "invalid_request", "The proxy sent no usable X-Forwarded-Uri or X-Original-URI."
                       ).response()
    path = routed_path(urlsplit(uri).path)
    if path is None:
        return Refusal(403, "invalid_request", "The original path has dot segments or undecodable escapes."
                       ).response()
    proto = request.headers.get("X-Forwarded-Proto")
    scheme = proto.lower() if proto else None
    resource = guard.policy.by_host_and_path(scheme, host, path.rstrip("/") or "/")
    if resource is None:
        return Refusal(403, "invalid_target", "The original request is not for a resource this server protects."
                       ).response()
    folded = guard.policy.by_host_and_path(scheme, host, path.lower().rstrip("/") or "/")
    if folded is not None and folded is not resource:
        # Caddy's path matcher ignores case: `/mcp/ADMIN` goes where `/mcp/admin` goes.
        return Refusal(403, "invalid_request", "The original path names a protected resource in another case."
                       ).response()
    method = (request.headers.get("X-Forwarded-Method") or request.method).upper()
    if method == "OPTIONS" and "Origin" in request.headers and "Access-Control-Request-Method" in request.headers:
        # A CORS preflight carries no credentials (Fetch §4.8); any other OPTIONS is a request like the rest.
        return web.Response(status=200, headers=dict.fromkeys(identity.NAMES, ""))
    try:
        principal = await admit(guard, resource, request.headers.get("Authorization"), _needed(request, method),
                                _calls(request, method))
        headers = await identity_of(guard, principal)
    except Refusal as refusal:
        return refusal.response()
    return web.Response(status=200, headers=headers)
