"""Attacker text never becomes a metric label, a log line in clear, a 500 or a byte outside RFC 6749
§5.2 in an error (issue 14 items 10, 11 and 12, SEC-77)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest

from proxy.errors import InvalidRequest, InvalidToken, OAuthError
from proxy.web.render import error_redirect
from tests.conftest import Facade, free_port
from tests.helpers import query_of
from tests.processes import ROOT, _env, stop, wait_http
from tests.security.conftest import events
from tests.test_metrics import scrape, value

# RFC 6749 §5.2: error_description and error_uri characters.
ALLOWED = {chr(c) for c in (0x20, 0x21, *range(0x23, 0x5C), *range(0x5D, 0x7F))}


async def raw_request(port: int, data: bytes, *, hang_up_after_s: float | None = None) -> bytes:
    """Send bytes no HTTP client library would; the answer's bytes, or none when we hang up first."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        if hang_up_after_s is not None:
            await asyncio.sleep(hang_up_after_s)  # the handler is waiting for the rest of the body
            return b""
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()


def headers_of(answer: bytes) -> tuple[int, dict[str, str]]:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in head[1:])
    return int(head[0].split()[1]), fields


async def test_an_unknown_error_code_never_becomes_a_metric_label(facade: Facade) -> None:
    """Issue 14 item 10: `/callback?error=<anything>` became a `reason` label of
    oauth_facade_flows_failed_total, one time series per attacker-chosen string. The failure is still
    counted, under a reason this server knows."""
    from proxy.metrics import KNOWN_REASONS

    client = facade.client()
    await client.register()
    response, _ = await client.start()
    upstream_state = query_of(response.headers["Location"])["state"]
    _, before = await scrape(facade)
    label = "attacker_chosen_label_3f9a"
    answered = await client.get(facade.url + "/callback?" + urlencode({"state": upstream_state, "error": label}))
    assert answered.status in (302, 400, 403)
    _, after = await scrape(facade)
    assert label not in after
    failed = [line for line in after.splitlines() if line.startswith("oauth_facade_flows_failed_total{")]
    reasons = {line.split('reason="')[1].split('"')[0] for line in failed}
    assert reasons <= KNOWN_REASONS | {"other"}
    total = sum(value(after, line.rsplit(" ", 1)[0]) - value(before, line.rsplit(" ", 1)[0]) for line in failed)
    assert total == 1


@pytest.fixture
def running_facade() -> Any:
    """`oauth-facade serve` as users run it, its stdout and stderr kept in files for the test to read."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="facade-logs-")
    out_path, err_path = os.path.join(workdir, "out"), os.path.join(workdir, "err")
    env = _env({"PROXY_PORT": str(port), "PROXY_ISSUER": f"http://127.0.0.1:{port}", "PROXY_LOG_LEVEL": "debug"})
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "proxy", "serve"], env=env, cwd=ROOT,
                                   stdout=out, stderr=err)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", process)
        yield port, process, out_path, err_path
    finally:
        stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


async def metrics_text(port: int) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
        return await response.text()


async def test_a_client_that_hangs_up_mid_body_is_not_a_server_error(running_facade: Any) -> None:
    """Issue 14 item 10: a body cut short by the client (it disconnects) was logged as error.unexpected
    with a traceback and counted as a 500. It is logged at info as request.aborted and counted 499.
    (A served facade, as users run it: aiohttp's test server cancels the handler instead.)"""
    port, process, out_path, _ = running_facade
    sample = 'oauth_facade_requests_total{endpoint="register",status="%s"}'
    before = await metrics_text(port)
    await raw_request(port, b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 1000\r\n\r\n{\"redirect_uris\"", hang_up_after_s=0.3)
    deadline = time.monotonic() + 10
    while value(after := await metrics_text(port), sample % "499") == value(before, sample % "499"):
        assert time.monotonic() < deadline, "the aborted request was never counted"
        await asyncio.sleep(0.05)
    assert value(after, sample % "499") - value(before, sample % "499") == 1
    assert value(after, sample % "500") == value(before, sample % "500")
    stop(process)
    output = open(out_path).read()
    logged = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert not [e for e in logged if e["event"] == "error.unexpected"]
    assert "Traceback" not in output
    assert [e["level"] for e in logged if e["event"] == "request.aborted"] == ["info"]
    assert [e["status"] for e in logged if e["event"] == "request" and e["path"] == "/register"] == [499]


async def test_an_oversized_request_line_is_logged_without_its_secrets(running_facade: Any) -> None:
    """Issue 14 item 10: aiohttp's own logger printed a refused request line, `code` and `state`
    included, in clear on stderr (the root logger's last resort), past the redactor. Its records now
    go through the facade's processors: one JSON line, request.malformed at info, the values redacted;
    and the answer aiohttp writes itself names no Python or aiohttp version either."""
    port, process, out_path, err_path = running_facade
    secrets = ["codeSECRETc0de", "stateSECRET5tate", "bearerSECRETt0ken"]
    line = f"/callback?code={secrets[0]}&state={secrets[1]}&pad=" + "A" * 9000
    status, fields = headers_of(await raw_request(port, f"GET {line} HTTP/1.1\r\nHost: x\r\n\r\n".encode()))
    assert status == 400
    assert fields["Server"] == "oauth-facade"
    big_header = f"GET /userinfo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secrets[2]}{'B' * 9000}\r\n\r\n"
    assert headers_of(await raw_request(port, big_header.encode()))[0] in (400, 431)
    stop(process)
    output = open(out_path).read() + open(err_path).read()
    for secret in secrets:
        assert secret not in output, secret
    assert "Traceback" not in output
    assert '"event": "request.malformed"' in output


async def test_non_ascii_authorization_is_a_clean_400(make_facade: Any, captured_logs: io.StringIO) -> None:
    """Issue 14 item 11: bytes that are not UTF-8 in `Authorization: Bearer` gave a 500 (aiohttp keeps
    them as surrogates, which no comparison can encode). Every endpoint answers 400 invalid_request as
    RFC 6749 JSON, and nothing is logged as unexpected."""
    facade = await make_facade(introspection_secret="rs", metrics_token="m")
    port = urlsplit(facade.url).port
    for method, path in (("POST", "/introspect"), ("GET", "/metrics"), ("GET", "/userinfo"), ("POST", "/token"),
                         ("POST", "/revoke")):
        for credentials in (b"Bearer \xff\xfe.abc.def", b"Bearer ab\xc3(.x.y", b"Basic \xe9t\xe9"):
            answer = await raw_request(port, method.encode() + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                                 b"Authorization: " + credentials + b"\r\nContent-Type: application/x-www-form-"
                                 b"urlencoded\r\nContent-Length: 7\r\nConnection: close\r\n\r\ntoken=x")
            status, fields = headers_of(answer)
            assert (status, fields["Content-Type"]) == (400, "application/json"), (path, credentials, answer[:300])
            assert b'"error":"invalid_request"' in answer
    assert not [e for e in events(captured_logs) if e["event"] == "error.unexpected"]


async def test_no_answer_names_the_server_software_version(facade: Facade) -> None:
    """Issue 14 item 11: the `Server` header named Python's and aiohttp's versions; every answer, static,
    dynamic, page, error or not found, now says only `oauth-facade`."""
    client = facade.client()
    await client.register()
    response, _ = await client.start()
    assert response.headers["Server"] == "oauth-facade"
    for method, path in (("GET", "/.well-known/oauth-authorization-server"), ("GET", "/jwks"), ("GET", "/healthz"),
                         ("GET", "/readyz"), ("GET", "/nowhere"), ("POST", "/token"), ("GET", "/authorize"),
                         ("OPTIONS", "/token"), ("GET", "/metrics")):
        async with facade.http.request(method, facade.url + path) as answer:
            assert answer.headers["Server"] == "oauth-facade", path


async def test_reflected_text_in_an_error_keeps_to_the_rfc6749_charset(facade: Facade) -> None:
    """Issue 14 item 12: request text reflected in `error_description` (here the name of a parameter
    sent twice) carried quotes, backslashes and non-ASCII characters, which RFC 6749 §5.2 excludes."""
    body = urlencode([('é"\\\u202e', "1"), ('é"\\\u202e', "2")]).encode()
    async with facade.http.post(facade.url + "/token", data=body,
                                headers={"Content-Type": "application/x-www-form-urlencoded"}) as response:
        document = await response.json()
    assert (response.status, document["error"]) == (400, "invalid_request")
    assert set(document["error_description"]) <= ALLOWED, document["error_description"]


def test_every_code_point_is_kept_out_of_error_text_unless_rfc6749_allows_it() -> None:
    """Issue 14 item 12, once where errors are built: whatever a handler passes or sets later, every
    rendering (JSON body, WWW-Authenticate, error redirect) holds only §5.2 characters, and an error
    code outside NQSCHAR falls back to the class's own. Every Unicode code point is tried."""
    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF) + "\udcff"
    errors: list[OAuthError] = [InvalidRequest(text), InvalidToken(text)]
    late = InvalidRequest()
    late.description = text
    late.error = 'x"y'
    errors.append(late)
    for error in errors:
        described = error.body()["error_description"]
        assert set(described) <= ALLOWED
    allowed_only = "".join(sorted(ALLOWED))
    assert InvalidRequest(allowed_only).description == allowed_only  # what the RFC allows is kept as sent
    assert InvalidRequest('RFC 6749 §5.2 "quoted"').description == "RFC 6749 Section 5.2 'quoted'"
    assert late.error == "invalid_request"
    assert set(InvalidToken(text).headers["WWW-Authenticate"].split('error_description="')[1][:-1]) <= ALLOWED
    location = error_redirect(late, "https://app.example/cb", "s", "https://issuer").headers["Location"]
    params = query_of(location)
    assert set(params["error_description"]) <= ALLOWED and params["error"] == "invalid_request"
