"""Gateway mode: the facade serves a protected resource's path itself and forwards to the MCP server.

Per request: admission (token, revocation, per-tool scopes; `guard`), then the request goes to the
backend without the client's `Authorization` (no token passthrough: MCP authorization, "Token
Passthrough"), without cookies or any client-sent identity header, with the identity headers set from
the token. The answer streams back unbuffered: Streamable HTTP answers a POST with JSON or an SSE
stream, and a GET may hold an SSE stream open for hours. A client that goes away closes the backend
connection, so the server sees the disconnect; a backend that is down or slow is a 502/504 with a JSON
body saying which.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from proxy import audit
from proxy.log import get_logger
from proxy.resource import identity
from proxy.resource.core import Principal
from proxy.resource.guard import GUARD, Refusal, admit, identity_of, require
from proxy.resource.messages import BadMessage, Call, calls_in, check_routing_headers
from proxy.resource.policy import ProtectedResource
from proxy.resource.tool_filter import filtered
from proxy.web.ratelimit import source_address

log = get_logger()

# RFC 9110 §7.6.1 hop-by-hop fields, plus what this hop sets itself.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "proxy-connection"})
# Headers frameworks and servers believe for the client's address, scheme, port or path: this hop is the
# only one that may say, so a client's own are dropped (compared with `_` read as `-`, as CGI/WSGI do).
CLIENT_CLAIMED = frozenset({"x-real-ip", "true-client-ip", "x-client-ip", "x-cluster-client-ip", "cf-connecting-ip",
                            "fastly-client-ip", "x-forwarded-port", "x-forwarded-prefix", "x-forwarded-server",
                            "x-forwarded-ssl", "x-forwarded-scheme", "x-url-scheme", "x-original-url",
                            "x-original-uri", "x-rewrite-url"})
NOT_FORWARDED = HOP_BY_HOP | CLIENT_CLAIMED | {"host", "authorization", "cookie", "content-length", "expect",
                                              "forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"}
NOT_RETURNED = HOP_BY_HOP | {"content-length"}
#: The gateway answers on the facade's own origin, where its consent and sign-in cookies live: a backend's
#: cookies pass only with PROXY_GATEWAY_BACKEND_COOKIES=on.
COOKIES = "set-cookie"
#: Answers up to this size with a Content-Length are relayed in one piece (the common JSON reply).
BUFFERED_MAX = 64 * 1024
#: How often an idle stream checks that its client is still connected.
DISCONNECT_POLL_S = 1.0
ROUTING_HEADERS = ("mcp-method", "mcp-name", "mcp-protocol-version")
#: Bodies larger than this are parsed in a worker thread, so one big call does not stall every other.
PARSED_ON_LOOP_MAX = 64 * 1024


class BackendFailed(Refusal):
    """502/504: the backend is unreachable, broke the connection, or did not answer in time."""


def _duplicate_routing_header(request: web.Request) -> str | None:
    for name in ROUTING_HEADERS:
        if len(request.headers.getall(name, ())) > 1:
            return name
    return None


async def _body(request: web.Request, limit: int) -> bytes:
    """The request body, at most `limit` bytes (413 beyond): the gateway reads it to check the call."""
    if request.content_length is not None and request.content_length > limit:
        raise Refusal(413, "invalid_request", f"The request body is larger than {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise Refusal(413, "invalid_request", f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


async def _calls(request: web.Request, body: bytes) -> list[Call]:
    """The body's calls, once its routing headers agree with it (`BadMessage` otherwise); a big body is
    parsed off the event loop."""
    duplicated = _duplicate_routing_header(request)
    if duplicated is not None:
        raise BadMessage(-32020, f"The {duplicated} header is sent more than once.")
    calls = calls_in(body) if len(body) <= PARSED_ON_LOOP_MAX else await asyncio.to_thread(calls_in, body)
    check_routing_headers(calls, request.headers.get("Mcp-Method"), request.headers.get("Mcp-Name"))
    return calls


def _forwarded_headers(request: web.Request, resource: ProtectedResource, identity_headers: dict[str, str],
                       trusted_proxies: tuple[str, ...]) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in NOT_FORWARDED or lower.replace("_", "-") in NOT_FORWARDED or identity.is_identity_header(lower):
            continue
        headers.add(name, value)
    headers.update(identity_headers)
    # What the client addressed, from configuration (never from its headers).
    headers["X-Forwarded-Proto"] = resource.scheme
    headers["X-Forwarded-Host"] = resource.host
    headers["X-Forwarded-For"] = source_address(request, trusted_proxies)
    return headers


def _bad_message(error: BadMessage) -> web.Response:
    return web.Response(status=400, body=json.dumps(error.body()).encode(), content_type="application/json",
                        headers={"Cache-Control": "no-store"})


# Browser-based MCP clients call with bearer tokens, never cookies: any origin may (as MCP servers do).
CORS = {"Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version"}
PREFLIGHT_HEADERS = frozenset({"authorization", "content-type", "accept", "last-event-id", "mcp-protocol-version",
                               "mcp-session-id", "mcp-method", "mcp-name"})


def _preflight(request: web.Request) -> web.Response:
    """CORS preflight (Fetch §4.8): no credentials are sent, so nothing is checked but the header names."""
    asked = [name.strip().lower() for name in request.headers.get("Access-Control-Request-Headers", "").split(",")]
    allowed = [name for name in asked if name in PREFLIGHT_HEADERS or name.startswith("mcp-param-")]
    return web.Response(status=204, headers={**CORS, "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
                                             "Access-Control-Allow-Headers": ", ".join(allowed),
                                             "Access-Control-Max-Age": "86400"})


async def gateway(request: web.Request) -> web.StreamResponse:
    if request.method == "OPTIONS":
        return _preflight(request)
    response = await _forward(request)
    if not response.prepared:
        response.headers.update(CORS)
    return response


async def _forward(request: web.Request) -> web.StreamResponse:
    guard = request.app[GUARD]
    resource = guard.policy.gateway_by_path[request.path.rstrip("/")]
    assert resource.backend is not None
    body = b""
    calls: list[Call] = []
    try:
        # The token comes from the headers: a stranger's request is answered before a byte of its body is
        # read or parsed (a 4 MB body cost 0.47 s of event-loop time; a slow sender held the request).
        principal = await admit(guard, resource, request.headers.get("Authorization"))
        if request.method == "POST":
            body = await _body(request, guard.settings.gateway_max_body_bytes)
            try:
                calls = await _calls(request, body)
            except BadMessage as error:
                return _bad_message(error)
            named = [(call.method, call.name) for call in calls]
            require(guard, resource, principal, guard.policy.needed(named), named)
        identity_headers = await identity_of(guard, principal)
    except Refusal as refusal:
        _audit_tool_calls(calls, None, resource, f"denied:{refusal.error}")
        return refusal.response()
    _audit_tool_calls(calls, principal, resource, "allowed")
    headers = _forwarded_headers(request, resource, identity_headers, guard.settings.trusted_proxies)
    raw_query = request.rel_url.raw_query_string  # as sent: decoding and re-encoding could change its meaning
    url = URL(resource.backend + ("&" if "?" in resource.backend else "?") + raw_query if raw_query
              else resource.backend, encoded=True)
    try:
        async with asyncio.timeout(guard.settings.gateway_timeout_s):  # until the response headers
            upstream = await guard.backends.request(request.method, url, headers=headers, data=body or None,
                                                    allow_redirects=False)
    except TimeoutError:
        log.warning("gateway.backend_timeout", resource=resource.url)
        return BackendFailed(504, "backend_timeout", "The MCP server did not answer in time.").response()
    except aiohttp.ClientError as exc:
        log.warning("gateway.backend_unavailable", resource=resource.url, problem=type(exc).__name__)
        return BackendFailed(502, "backend_unavailable", "The MCP server is unreachable.").response()
    access = guard.access
    if access.filter_tools_list and access.has_tool_rules and [call.method for call in calls] == ["tools/list"]:
        return await _relay_filtered(request, upstream, lambda tool: access.may_call(principal.claims, resource.url,
                                                                                     tool))
    return await _relay(request, upstream)


#: The largest `tools/list` answer read whole to be filtered.
FILTERED_MAX = 4 * 1024 * 1024


async def _relay_filtered(request: web.Request, upstream: aiohttp.ClientResponse,
                          keep: Callable[[str], bool]) -> web.StreamResponse:
    """A `tools/list` answer read whole (bounded), the tools the caller may not call taken out."""
    try:
        async with asyncio.timeout(request.app[GUARD].settings.gateway_timeout_s):
            body = await upstream.content.read(FILTERED_MAX + 1)
    except (TimeoutError, aiohttp.ClientError):
        upstream.close()
        return BackendFailed(502, "backend_unavailable", "The MCP server broke off its answer.").response()
    finally:
        upstream.release()
    if len(body) > FILTERED_MAX:
        return BackendFailed(502, "backend_unavailable", "The MCP server's tool list is too large.").response()
    body = filtered(body, upstream.headers.get("Content-Type", ""), keep)
    cookies = request.app[GUARD].settings.gateway_backend_cookies
    return web.Response(status=upstream.status, body=body, headers=_returned_headers(upstream, cookies))


def _audit_tool_calls(calls: list[Call], principal: Principal | None, resource: ProtectedResource,
                      decision: str) -> None:
    """`audit.tool_call` per tools/call in the body, when PROXY_AUDIT_TOOL_CALLS is on."""
    if not audit.trail.tool_calls:
        return
    for call in calls:
        if call.method == "tools/call":
            audit.event("audit.tool_call", tool=call.name, decision=decision, resource=resource.url,
                        sub=principal.sub if principal else None,
                        client_id=principal.client_id if principal else None)


def _returned_headers(upstream: aiohttp.ClientResponse, cookies: bool) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.headers.items():
        if name.lower() not in NOT_RETURNED and (cookies or name.lower() != COOKIES):
            headers.add(name, value)
    headers.update(CORS)
    return headers


async def _relay(request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
    """The backend's answer to the client: in one piece when small and sized, else chunk by chunk."""
    length = upstream.content_length
    cookies = request.app[GUARD].settings.gateway_backend_cookies
    streaming = "text/event-stream" in upstream.headers.get("Content-Type", "")
    if not streaming and length is not None and length <= BUFFERED_MAX:
        try:
            async with asyncio.timeout(request.app[GUARD].settings.gateway_timeout_s):
                body = await upstream.read()
        except (TimeoutError, aiohttp.ClientError):
            upstream.close()
            return BackendFailed(502, "backend_unavailable", "The MCP server broke off its answer.").response()
        finally:
            upstream.release()
        return web.Response(status=upstream.status, body=body, headers=_returned_headers(upstream, cookies))
    response = web.StreamResponse(status=upstream.status, headers=_returned_headers(upstream, cookies))
    if length is not None:
        response.content_length = length
    try:
        await response.prepare(request)
        pump = asyncio.ensure_future(_pump(upstream, response))
        watch = asyncio.ensure_future(_client_gone(request))
        try:
            await asyncio.wait((pump, watch), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, watch):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        if pump.done() and not pump.cancelled() and pump.exception() is None:
            await response.write_eof()
        else:
            # The client left or the backend broke off: end this connection so the truncation shows.
            if request.transport is not None:
                request.transport.close()
    except (ConnectionError, aiohttp.ClientError):
        if request.transport is not None:
            request.transport.close()
    finally:
        upstream.close()  # closes the backend connection: the server sees a disconnect, not a clean end
    return response


async def _pump(upstream: aiohttp.ClientResponse, response: web.StreamResponse) -> None:
    async for chunk in upstream.content.iter_any():
        await response.write(chunk)


async def _client_gone(request: web.Request) -> None:
    """Returns once the client's connection is closed (aiohttp does not cancel handlers by default)."""
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(DISCONNECT_POLL_S)
