"""The one middleware: request id, the access log line, route policy headers, per-address rate limits,
and error rendering.

Handlers raise `OAuthError`; this renders it as the route's policy says. A client that hangs up
mid-body is no server error: logged at info, counted as 499 (nginx's "client closed request").
Anything else is a bug or an outage we did not map: the client gets `server_error` with a fixed
sentence, the log gets the traceback. Every answer names the server `oauth-facade`, no versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time

import structlog
from aiohttp import hdrs, web
from multidict import istr

from proxy import audit, metrics
from proxy import log as logging_setup
from proxy.errors import InvalidRequest, OAuthError, PayloadTooLarge, ServerError
from proxy.log import get_logger
from proxy.state import SETTINGS
from proxy.web import ratelimit
from proxy.web.render import NO_STORE, error_page, error_redirect, json_response
from proxy.web.routes import POLICY, REDIRECT_TARGET, SERVER, Handler, Policy
from proxy.web.tracing import OAUTH_ERROR

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_DEFAULT = Policy(endpoint="other", errors="json", cors=False, no_store=False, static=False)
ISSUER: web.AppKey[str] = web.AppKey("issuer", str)
CLIENT_CLOSED = 499
REQUEST_ID_HEADER = istr("X-Request-Id")

log = get_logger()


def render_error(request: web.Request, error: OAuthError, policy: Policy) -> web.Response:
    response = _rendered(request, error, policy)
    response[OAUTH_ERROR] = error.error  # for the request span (proxy/web/tracing.py)
    return response


def _rendered(request: web.Request, error: OAuthError, policy: Policy) -> web.Response:
    target = request.get(REDIRECT_TARGET)
    if policy.errors == "redirect" and target is not None and error.redirectable:
        return error_redirect(error, target[0], target[1], request.app[ISSUER])
    if policy.errors in ("html", "redirect"):
        return error_page(error)
    headers = {**error.headers, **NO_STORE}
    return json_response(error.body(), status=error.status, headers=headers)


@web.middleware
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route
    policy = request.app[POLICY].get(route.name or "", _DEFAULT) if route is not None else _DEFAULT
    if policy.static:
        # Pre-rendered bytes with their headers baked in (discovery, JWKS, health, preflights): counted,
        # not logged; at thousands a second the log line would cost more than the answer.
        response = await handler(request)
        response.headers["Server"] = SERVER
        metrics.count(policy.endpoint, response.status)
        return response

    started = time.perf_counter()
    incoming = request.headers.get(REQUEST_ID_HEADER)
    # A correlation id, not a secret: the fast generator, not the OS's.
    request_id = incoming if incoming and _REQUEST_ID.match(incoming) else f"{random.getrandbits(64):016x}"
    # The only key bound per request: binding it replaces the last request's (no clear_contextvars, which
    # copies and walks the context on every request).
    structlog.contextvars.bind_contextvars(request_id=request_id)
    if audit.enabled():  # the audit trail's lines carry the request id and the source address too
        trusted = request.config_dict[SETTINGS].trusted_proxies
        audit.begin_request(request_id, ratelimit.source_address(request, trusted))
    try:
        _readable_authorization(request)
        await ratelimit.admit_route(request, policy.endpoint)
        response = await handler(request)
    except OAuthError as error:
        if error.status >= 500 or error.detail:
            log.warning("request.failed", error=error.error, status=error.status, detail=error.detail)
        if error.status == 401:
            with contextlib.suppress(OAuthError):  # a store outage must not turn the 401 into another answer
                await ratelimit.credential_failed(request, policy.endpoint)
        metrics.flow_failed(policy.endpoint, error.error)
        response = render_error(request, error, policy)
    except ConnectionResetError:
        if _client_gone(request):
            # aiohttp's "Connection lost" while reading the body: the client left, nobody reads an answer.
            log.info("request.aborted", method=request.method, path=request.path)
            response = web.Response(status=CLIENT_CLOSED)
        else:
            response = _unexpected(request, policy)
    except web.HTTPException as exc:
        # aiohttp's own answers: 404/405 from the router, 413 from the body limit.
        if exc.status == 413:
            response = render_error(request, PayloadTooLarge(), policy)
        elif policy.errors == "json" and 400 <= exc.status < 500:
            # Every 4xx of a back-channel endpoint is RFC 6749 JSON, even the router's (oauth4webapi parses it).
            body = {"error": "invalid_request", "error_description": f"{exc.status} {exc.reason}."}
            allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
            response = json_response(body, status=exc.status, headers=allow)
        else:
            response = web.Response(status=exc.status, text=exc.text, headers=exc.headers)
    except Exception:
        response = _unexpected(request, policy)
    response.headers.update(policy.headers)  # Server included
    response.headers[REQUEST_ID_HEADER] = request_id
    elapsed = time.perf_counter() - started
    metrics.observe(policy.endpoint, response.status, elapsed)
    if not logging_setup.writes(logging.INFO):
        return response  # scheduling a line nobody writes costs measurably per request (bench/README)
    # Written once aiohttp has sent the answer (it does so right after this returns, before the loop runs
    # another callback): the line is the same, but its rendering and write no longer delay the client (at
    # the default info level they were 0.03-0.07 ms of the ~0.65 ms the gateway added to a proxied request).
    # call_soon runs it in a copy of this context, so it carries this request's id.
    asyncio.get_running_loop().call_soon(_log_request, request.method, request.path, response.status,
                                         round(elapsed * 1000, 2))
    return response


def _log_request(method: str, path: str, status: int, duration_ms: float) -> None:
    log.info("request", method=method, path=path, status=status, duration_ms=duration_ms)


def _readable_authorization(request: web.Request) -> None:
    """RFC 9110 §11.6.2 credentials are ASCII (token68, base64): bytes that are not (aiohttp keeps
    undecodable ones as surrogates) are a malformed request here, before any handler compares them."""
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is not None and not (header.isascii() and header.isprintable()):
        raise InvalidRequest("The Authorization header must be printable ASCII.")


def _unexpected(request: web.Request, policy: Policy) -> web.Response:
    """A bug or an unmapped outage, inside the `except` that caught it: the traceback goes to the log."""
    log.exception("error.unexpected")
    metrics.flow_failed(policy.endpoint, "server_error")
    return render_error(request, ServerError(), policy)


def _client_gone(request: web.Request) -> bool:
    """The connection to the client is closed (aiohttp drops the transport when it is lost)."""
    transport = request.transport
    return transport is None or transport.is_closing()
