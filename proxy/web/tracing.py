"""Optional OpenTelemetry tracing (the `otel` extra), off unless the standard `OTEL_*` variables ask for it.

On when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, or OTEL_TRACES_EXPORTER
names an exporter (`otlp`, `console`...); OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none keep it off.
Everything else (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, OTEL_PROPAGATORS,
OTEL_EXPORTER_OTLP_HEADERS, OTEL_BSP_*...) is read by the SDK itself, as everywhere else.

opentelemetry is imported only here, and only once tracing is on: without the extra, or without the
variables, the facade imports none of it and runs exactly as before.

What a span may carry is decided here, not by the instrumentations' defaults:
- the request span (our own middleware, not opentelemetry-instrumentation-aiohttp-server, which records
  the query string, and /callback's query is the upstream's authorization code): the method, the route
  template, the status and the OAuth error code; never the path as sent, the query or a header;
- Redis spans (opentelemetry-instrumentation-redis): the command name, every argument replaced by `?`;
- upstream and gateway backend calls (an aiohttp TraceConfig of our own): method, the URL without its
  query and userinfo, status; no header is captured. The W3C `traceparent` (and `baggage`, per OTEL_PROPAGATORS)
  goes to the backend in place of any the client sent.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from importlib.metadata import entry_points
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from proxy.log import get_logger
from proxy.web.routes import Handler

log = get_logger()

#: The tracer provider of this app, when tracing is on.
TRACER_PROVIDER: web.AppKey[Any] = web.AppKey("tracer_provider", object)
#: The OAuth `error` code an answer carries (set where the error is rendered), for the request span.
OAUTH_ERROR: web.ResponseKey[str] = web.ResponseKey("oauth_error", str)
#: Semantic conventions' known methods; any other is `_OTHER` (a client chooses the method string).
METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"})
SCOPE = "oauth-facade"


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether the OTEL_* variables ask for traces (the extra may still be missing)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()}
    if "none" in exporters:
        return False
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return bool(exporters or endpoint)


def from_environment(environ: Mapping[str, str] | None = None) -> Any:
    """A TracerProvider exporting as OTEL_* say, or None (not asked for, or the extra is not installed)."""
    environ = os.environ if environ is None else environ
    if not wanted(environ):
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("startup.tracing_unavailable",
                    hint="OTEL_* variables ask for traces: install the extra, pip install 'oauth-facade[otel]'")
        return None
    named = "OTEL_SERVICE_NAME" in environ or "service.name=" in environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    provider = TracerProvider(resource=Resource.create({} if named else {"service.name": SCOPE}))
    for name in _exporter_names(environ):
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    log.info("startup.tracing", exporters=list(_exporter_names(environ)))
    return provider


def _exporter_names(environ: Mapping[str, str]) -> list[str]:
    names = [name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if name.strip()]
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    grpc = protocol.strip().lower() == "grpc"
    return [("otlp_proto_grpc" if grpc else "otlp_proto_http") if name == "otlp" else name for name in names]


def _exporter(name: str) -> Any:
    """The span exporter registered under `name` (the SDK's entry points: console, otlp_proto_http...)."""
    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        raise ValueError(f"OTEL_TRACES_EXPORTER: no span exporter named {name!r} is installed")
    return next(iter(found)).load()()


def middlewares(provider: Any) -> list[Any]:
    """The request-span middleware, to run outside every other one, or nothing when tracing is off."""
    return [] if provider is None else [_request_spans(provider)]


def _request_spans(provider: Any) -> Any:
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    tracer = provider.get_tracer(SCOPE)

    @web.middleware
    async def request_span(request: web.Request, handler: Handler) -> web.StreamResponse:
        method = request.method if request.method in METHODS else "_OTHER"
        route = route_template(request)
        attributes: dict[str, Any] = {"http.request.method": method}
        if route:
            attributes["http.route"] = route
        with tracer.start_as_current_span(f"{method} {route}" if route else method, context=extract(request.headers),
                                          kind=trace.SpanKind.SERVER, attributes=attributes) as span:
            response = await handler(request)
            span.set_attribute("http.response.status_code", response.status)
            error = response.get(OAUTH_ERROR)
            if error is not None:
                span.set_attribute("oauth.error", error)
            if response.status >= 500:
                span.set_attribute("error.type", str(response.status))
                span.set_status(trace.StatusCode.ERROR)
            return response

    return request_span


def route_template(request: web.Request) -> str:
    """The matched route as configured (`/token`, `/devidp/authorize`), never the path as sent; "" if none."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else ""


def client_trace_configs(app: web.Application, peer: str) -> list[aiohttp.TraceConfig]:
    """For an outgoing `ClientSession`: a span per call and `traceparent` injected, when tracing is on.

    Our own TraceConfig rather than opentelemetry-instrumentation-aiohttp-client: that package pins one
    exact semantic-conventions release, which no SDK release current with the MCP SDK's shares."""
    provider = app.get(TRACER_PROVIDER)
    if provider is None:
        return []
    from opentelemetry import trace
    from opentelemetry.propagate import inject

    tracer = provider.get_tracer(SCOPE)

    async def started(session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestStartParams) -> None:
        method = params.method if params.method in METHODS else "_OTHER"
        context.span = tracer.start_span(method, kind=trace.SpanKind.CLIENT, attributes={
            "http.request.method": method, "url.full": span_url(params.url), "server.address": params.url.host or "",
            "server.port": params.url.port or 0, "oauth_facade.peer": peer})
        inject(params.headers, context=trace.set_span_in_context(context.span))  # replaces a client-sent one

    async def ended(session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestEndParams) -> None:
        span = getattr(context, "span", None)
        if span is None:
            return
        status = params.response.status
        span.set_attribute("http.response.status_code", status)
        if status >= 400:
            span.set_attribute("error.type", str(status))
            span.set_status(trace.StatusCode.ERROR)
        span.end()

    async def failed(session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestExceptionParams
                     ) -> None:
        span = getattr(context, "span", None)
        if span is None:
            return
        span.set_attribute("error.type", type(params.exception).__qualname__)
        span.set_status(trace.StatusCode.ERROR)
        span.end()

    config = aiohttp.TraceConfig()
    config.on_request_start.append(started)
    config.on_request_end.append(ended)
    config.on_request_exception.append(failed)
    return [config]


def span_url(url: URL) -> str:
    """The URL a client span shows: scheme, host, port and path; no userinfo, query or fragment (a gateway
    call's query is the client's, and may hold anything)."""
    return str(url.with_user(None).with_query(None).with_fragment(None))


def trace_redis(client: Any, provider: Any) -> None:
    """A span per Redis command of `client` (arguments masked by the instrumentation), when tracing is on."""
    if provider is None:
        return
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    RedisInstrumentor.instrument_client(client, tracer_provider=provider)


def untrace_redis(client: Any, provider: Any) -> None:
    """Undo `trace_redis` on a client the app did not create (and so does not close)."""
    if provider is None:
        return
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    RedisInstrumentor.uninstrument_client(client)


def lifetime(provider: Any, owned: bool) -> Any:
    """`cleanup_ctx` entry, first of all: a provider the app made is flushed and shut down after every
    other resource closed (an injected one belongs to its owner)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if provider is not None and owned:
                provider.shutdown()

    return context
