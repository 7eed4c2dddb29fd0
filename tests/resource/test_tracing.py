"""OpenTelemetry tracing (the `otel` extra, proxy/web/tracing.py) through a real flow: registration, sign-in
at the dev IdP, the token request and a gateway call to the SDK backend, which echoes the `traceparent` it
received. Spans go to the SDK's InMemorySpanExporter; one test exports OTLP/HTTP to a collector, configured
by the OTEL_* variables alone; others prove that without those variables (or without the extra) the facade
neither traces nor imports opentelemetry."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from proxy.web import tracing
from tests.conftest import FacadeFactory, free_port
from tests.resource.conftest import GatewayFactory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def exported() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _texts(span: ReadableSpan) -> list[str]:
    """Everything a span shows a trace backend: its name, attribute values, event names and attributes."""
    texts = [span.name]
    for attributes in [span.attributes or {}, *[event.attributes or {} for event in span.events]]:
        for value in attributes.values():
            texts.extend(str(item) for item in (value if isinstance(value, tuple | list) else [value]))
    texts.extend(event.name for event in span.events)
    return texts


def _server(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.kind == SpanKind.SERVER and span.name == name]


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [span for span in spans if span.parent is not None and span.parent.span_id == parent.context.span_id]


async def test_a_sign_in_and_a_gateway_call_are_traced_and_the_backend_continues_the_trace(
        make_gateway: GatewayFactory, exported: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    """Every request is one server span named by its route template with its status; Redis commands, the
    upstream token call and the gateway's backend call are its children; the backend receives a W3C
    traceparent naming the gateway's client span, in the trace the client started; and no token, code,
    verifier, secret, query or Authorization value appears in any span's name or attributes."""
    provider, exporter = exported
    facade = await make_gateway(tracer_provider=provider)
    client = facade.client()
    await client.register()
    response, auth = await client.start(resource=facade.url + "/echo")
    upstream_codes = []
    while response.status == 302:  # through the dev IdP and back, as a browser would
        location = response.headers["Location"]
        if location.startswith(facade.url + "/callback"):
            upstream_codes += parse_qs(urlsplit(location).query)["code"]
        if not location.startswith((facade.url, facade.idp_url)):
            auth.location = location
            break
        response = await client.get(location)
    status, tokens = await client.exchange(auth)
    assert status == 200, tokens
    assert upstream_codes

    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    query_secret = "query-secret-" + secrets.token_hex(8)
    call = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    async with facade.http.post(f"{facade.url}/echo?secret={query_secret}", json=call, headers={
            "Authorization": f"Bearer {tokens['access_token']}", "traceparent": f"00-{trace_id}-{parent_id}-01",
            "Accept": "application/json, text/event-stream"}) as answer:
        assert answer.status == 200
        seen = (await answer.json())["headers"]
    replayed, _ = await client.exchange(auth)  # the code again: invalid_grant
    assert replayed == 400
    async with facade.http.post(facade.url + "/echo", json=call) as unauthenticated:
        assert unauthenticated.status == 401

    spans = list(exporter.get_finished_spans())
    for name in ("POST /register", "GET /authorize", "GET /callback", "POST /token", "POST /echo"):
        assert _server(spans, name), (name, sorted({span.name for span in spans}))
    for span in (span for span in spans if span.kind == SpanKind.SERVER):
        assert span.attributes is not None
        assert "?" not in span.name and span.attributes["http.response.status_code"] >= 200

    gateway_span = next(span for span in _server(spans, "POST /echo")
                        if span.attributes and span.attributes["http.response.status_code"] == 200)
    assert f"{gateway_span.context.trace_id:032x}" == trace_id  # the client's trace continues
    assert gateway_span.parent is not None and f"{gateway_span.parent.span_id:016x}" == parent_id
    [backend_call] = [span for span in _children(spans, gateway_span) if span.kind == SpanKind.CLIENT
                      and span.attributes and span.attributes.get("oauth_facade.peer") == "gateway"]
    assert seen["traceparent"] == [f"00-{trace_id}-{backend_call.context.span_id:016x}-01"]
    assert backend_call.attributes is not None and backend_call.attributes["http.response.status_code"] == 200
    assert any(span.attributes and span.attributes.get("db.system") == "redis"
               for span in _children(spans, gateway_span))  # the revocation check

    [callback] = _server(spans, "GET /callback")
    upstream = [span for span in _children(spans, callback) if span.attributes
                and span.attributes.get("oauth_facade.peer") == "upstream"]
    assert {span.attributes["http.request.method"] for span in upstream if span.attributes} >= {"POST"}
    [first_token, second_token] = sorted(_server(spans, "POST /token"), key=lambda span: span.start_time or 0)
    assert any(span.attributes and span.attributes.get("db.system") == "redis"
               for span in _children(spans, first_token))
    assert second_token.attributes is not None and second_token.attributes["oauth.error"] == "invalid_grant"
    assert second_token.attributes["http.response.status_code"] == 400
    refused = [span for span in _server(spans, "POST /echo") if span is not gateway_span]
    assert [span.attributes["oauth.error"] for span in refused if span.attributes] == ["unauthorized"]

    secret_values = {tokens["access_token"], tokens["refresh_token"], tokens["id_token"], auth.params["code"],
                     auth.verifier, query_secret, "facade secret+1", *upstream_codes}
    shown = [text for span in spans for text in _texts(span)]
    leaks = sorted({value[:12] for value in secret_values for text in shown if value in text})
    assert leaks == []
    assert not [text for text in shown if "Bearer" in text or "code=" in text]


async def test_an_unknown_path_is_named_by_its_method_alone(
        make_gateway: GatewayFactory, exported: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    """A request no route matches is a span named `GET` without http.route: the path as sent (which the
    client chooses, and may hold anything) never names a span."""
    provider, exporter = exported
    facade = await make_gateway(tracer_provider=provider)
    async with facade.http.get(facade.url + "/no/such/path-secret-value") as response:
        assert response.status == 404
    [span] = [span for span in exporter.get_finished_spans() if span.kind == SpanKind.SERVER]
    assert span.name == "GET" and span.attributes is not None
    assert "http.route" not in span.attributes
    assert not [text for text in _texts(span) if "secret" in text]


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver: keeps each decoded export request."""

    received: ClassVar[list[ExportTraceServiceRequest]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        type(self).received.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    """An OTLP collector on a free loopback port, in a thread (the exporter posts from its own thread)."""
    received: list[ExportTraceServiceRequest] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


async def test_the_otel_variables_alone_turn_tracing_on_and_spans_reach_an_otlp_collector(
        make_facade: FacadeFactory, collector: tuple[str, list[ExportTraceServiceRequest]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With OTEL_EXPORTER_OTLP_ENDPOINT set (and nothing injected), the facade exports its spans over
    OTLP/HTTP, under the service name oauth-facade."""
    endpoint, received = collector
    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    facade = await make_facade()
    async with facade.http.post(facade.url + "/token", data={"grant_type": "nonsense"}) as response:
        assert response.status == 400
    facade.server.app[tracing.TRACER_PROVIDER].force_flush()
    spans = [(resource_spans.resource, span) for request in received for resource_spans in request.resource_spans
             for scope in resource_spans.scope_spans for span in scope.spans]
    [(resource, span)] = [(resource, span) for resource, span in spans if span.name == "POST /token"]
    assert {attribute.key: attribute.value.string_value for attribute in resource.attributes}["service.name"] \
        == "oauth-facade"
    assert {attribute.key: attribute.value.string_value for attribute in span.attributes}["oauth.error"] \
        == "unsupported_grant_type"


@pytest.mark.parametrize(("environ", "on"), [
    ({}, False),
    ({"OTEL_SERVICE_NAME": "facade"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "console"}, True),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
])
def test_which_otel_variables_turn_tracing_on(environ: dict[str, str], on: bool) -> None:
    """Tracing is off by default; an OTLP endpoint or an exporter name turns it on; the standard
    OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER=none keep it off."""
    assert tracing.wanted(environ) is on
    assert (tracing.from_environment(environ) is not None) is on


def test_an_unknown_exporter_name_is_a_clear_error() -> None:
    """OTEL_TRACES_EXPORTER naming an exporter that is not installed stops start-up with its name."""
    with pytest.raises(ValueError, match="no-such-exporter"):
        tracing.from_environment({"OTEL_TRACES_EXPORTER": "no-such-exporter"})


PROBE = """
import importlib.abc, json, sys
if sys.argv[1] == "blocked":
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] == "opentelemetry":
                raise ImportError("blocked: " + name)
    sys.meta_path.insert(0, Block())
# redis-py 8 imports opentelemetry's metrics API by itself where installed: the baseline, not the facade's doing
import fakeredis, redis.asyncio, redis.asyncio.cluster, redis.asyncio.sentinel
baseline = set(sys.modules)
import proxy.__main__, proxy.serve
from proxy.app import create_app
from proxy.settings import Settings
app = create_app(Settings(_env_file=None))
print(json.dumps({"middlewares": len(app.middlewares),
                  "otel": sorted(m for m in set(sys.modules) - baseline if m.split(".")[0] == "opentelemetry")}))
"""


def _probe(mode: str, **environ: str) -> dict[str, Any]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    result = subprocess.run([sys.executable, "-c", PROBE, mode], env={**env, **environ}, cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=True)
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    answer["log"] = result.stdout + result.stderr
    return answer


def test_without_the_variables_the_facade_imports_no_opentelemetry() -> None:
    """With the extra installed but no OTEL_* variable, importing the facade and building the app import
    no opentelemetry module (beyond what redis-py itself imports) and add no middleware."""
    answer = _probe("plain")
    assert answer["otel"] == [] and answer["middlewares"] == 1


def test_without_the_extra_the_variables_only_log_a_hint() -> None:
    """With OTEL_EXPORTER_OTLP_ENDPOINT set but opentelemetry not importable (the extra not installed), the
    facade starts as before and says which extra to install."""
    answer = _probe("blocked", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318")
    assert answer["middlewares"] == 1 and answer["otel"] == []
    assert "startup.tracing_unavailable" in answer["log"] and "oauth-facade[otel]" in answer["log"]


def test_with_the_variables_and_the_extra_the_app_traces() -> None:
    """The counterpart of the two above: the same probe with the variable set and the extra importable adds
    the request-span middleware (so those tests see the switch, not a probe that cannot trace)."""
    answer = _probe("plain", OTEL_TRACES_EXPORTER="console")
    assert answer["middlewares"] == 2 and "opentelemetry.sdk.trace" in answer["otel"]
