"""Logs: one JSON line per request, and no secret, code or token in any line of a whole flow."""

from __future__ import annotations

import base64
import io
import json

from proxy.log import Redactor, scrub
from tests.conftest import FacadeFactory


async def test_a_whole_flow_logs_no_secret(make_facade: FacadeFactory, captured_logs: io.StringIO) -> None:
    """A full flow (consent, Basic auth, refresh, grace replay, introspection, userinfo, revocation, code
    replay) logs request lines and code.reused, and no code, token, verifier, state, nonce, CSRF, consent
    id or credential."""
    facade = await make_facade(introspection_secret="introspection-credential", consent=True)
    client = facade.client()
    await client.register()
    response, auth = await client.start()
    html = (await response.read()).decode()
    import re

    form = dict(re.findall(r'name="(consent_id|csrf)" value="([^"]+)"', html))
    upstream = await client.post_form(facade.url + "/consent", {**form, "decision": "approve"})
    upstream_params = dict(item.split("=", 1) for item in upstream.headers["Location"].split("?")[1].split("&"))
    auth = await client.follow(upstream, auth)
    basic = "Basic " + base64.b64encode(f"{client.client_id}:client-secret-value".encode()).decode()
    status, first, _ = await client.token({
        "grant_type": "authorization_code", "code": auth.params["code"], "code_verifier": auth.verifier,
        "redirect_uri": auth.redirect_uri}, {"Authorization": basic})
    assert status == 200
    status, second = await client.refresh(first["refresh_token"])
    assert status == 200
    await client.refresh(first["refresh_token"])  # a grace replay
    async with facade.http.post(facade.url + "/introspect", data={"token": second["access_token"]},
                                headers={"Authorization": "Bearer introspection-credential"}) as r:
        assert r.status == 200
    async with facade.http.get(facade.url + "/userinfo",
                               headers={"Authorization": f"Bearer {second['access_token']}"}) as r:
        assert r.status == 200
    async with facade.http.post(facade.url + "/revoke", data={"token": second["refresh_token"],
                                                              "client_id": client.client_id}) as r:
        assert r.status == 200
    await client.exchange(auth)  # a replayed code: logged as code.reused

    secrets_issued = {
        "client code": auth.params["code"], "verifier": auth.verifier, "state": auth.state or "",
        "nonce": auth.nonce or "", "csrf": form["csrf"], "consent id": form["consent_id"],
        "upstream state": upstream_params["state"], "upstream nonce": upstream_params["nonce"],
        "client secret": "client-secret-value", "basic header": basic.split()[1],
        "introspection secret": "introspection-credential", "upstream secret": "facade secret+1",
    }
    for n, body in enumerate((first, second)):
        for name in ("access_token", "refresh_token", "id_token"):
            secrets_issued[f"{name} {n}"] = body[name]
    for token in (*facade.idp_state.access_tokens, *facade.idp_state.refresh_tokens):
        secrets_issued["upstream token " + token[:4]] = token
    for request in facade.idp_state.token_requests:
        if "code" in request:
            secrets_issued["upstream code"] = request["code"]

    lines = captured_logs.getvalue().splitlines()
    assert len(lines) > 10
    events = [json.loads(line) for line in lines]
    requests = [e for e in events if e["event"] == "request"]
    assert {"method", "path", "status", "duration_ms", "request_id"} <= set(requests[0])
    assert any(e["event"] == "code.reused" for e in events)
    for line in lines:
        for name, value in secrets_issued.items():
            assert value and value not in line, f"{name} appears in a log line: {line}"


def test_redactor_removes_secret_fields_and_scrubs_urls() -> None:
    """The Redactor processor masks secret-named fields, strips code and state from URLs and bearer tokens
    from text, and leaves plain text alone."""
    event = Redactor()(None, "info", {
        "event": "x", "refresh_token": "r", "Authorization": "Basic abc", "code": "c",
        "url": "https://a/cb?code=SECRET&state=S2", "note": "Bearer eyJhbGciOi.x.y"})
    assert event["refresh_token"] == event["Authorization"] == event["code"] == "[redacted]"
    assert "SECRET" not in event["url"] and "S2" not in event["url"]
    assert "eyJ" not in event["note"]
    assert scrub("plain text") == "plain text"


def test_library_records_never_reach_the_root_logger_unredacted(captured_logs: io.StringIO) -> None:
    """aiohttp's records are written once, through the redactor: none propagates to the root logger, whose
    handlers (an operator's logging config, a platform's stderr capture) would print the raw message."""
    import logging

    seen: list[logging.LogRecord] = []

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    spy = Spy()
    logging.getLogger().addHandler(spy)
    try:
        for name in ("aiohttp.web", "aiohttp.server", "aiohttp.access", "aiohttp.client"):
            logging.getLogger(name).error("Error handling /cb?code=ROOTCODE")
    finally:
        logging.getLogger().removeHandler(spy)
    assert [record.name for record in seen if record.name.startswith("aiohttp")] == []
    assert "ROOTCODE" not in captured_logs.getvalue()


def test_libraries_log_through_the_redactor(captured_logs: io.StringIO) -> None:
    """Issue 14 item 10: records of aiohttp's stdlib loggers (server, access, web, client) become JSON
    lines of ours, with query values of credentials and whole Authorization/Cookie header values
    redacted, in the message and in the traceback; a refused request is request.malformed at info."""
    import logging

    from aiohttp.http_exceptions import LineTooLong

    try:
        raise ValueError("while reading /cb?code=TRACEBACKCODE&x=1")
    except ValueError:
        logging.getLogger("aiohttp.web").exception("Error handling /cb?state=MESSAGESTATE&token=TOKENVALUE")
    logging.getLogger("aiohttp.client").warning("sent Authorization: DPoP HEADERVALUE and Cookie: s=COOKIEVALUE")
    long_secret = "".join(("LONG", "SECRET")) * 400  # the traceback quotes the raising line, not this one
    try:  # longer than what is kept of a traceback: the cut must not strand the value without its name
        raise ValueError("/cb?code=" + long_secret)
    except ValueError:
        logging.getLogger("aiohttp.web").exception("Error handling request")
    refused = LineTooLong("/callback?code=REFUSEDCODE&state=REFUSEDSTATE", "8190")
    logging.getLogger("aiohttp.server").error("Error handling request from %s", "127.0.0.1", exc_info=refused)
    text = captured_logs.getvalue()
    for secret in ("TRACEBACKCODE", "MESSAGESTATE", "TOKENVALUE", "HEADERVALUE", "COOKIEVALUE", "REFUSEDCODE",
                   "REFUSEDSTATE", "LONGSECRET"):
        assert secret not in text, secret
    events = [json.loads(line) for line in text.splitlines()]
    assert [(e["event"], e["level"], e["logger_name"]) for e in events] == [
        ("library.log", "error", "aiohttp.web"), ("library.log", "warning", "aiohttp.client"),
        ("library.log", "error", "aiohttp.web"), ("request.malformed", "info", "aiohttp.server")]
    assert "Traceback" in events[0]["exception"] and "exception" not in events[3]


async def test_each_request_line_carries_the_id_its_answer_names(make_facade: FacadeFactory,
                                                                 captured_logs: io.StringIO) -> None:
    """The `request` line of an answer has the request id the answer's X-Request-Id names: the client's
    own when it sent a usable one, else the one generated for it (the line is written after the answer
    is sent, still in that request's context)."""
    facade = await make_facade()
    answers = []
    for headers in ({"X-Request-Id": "trace-me-1"}, {}, {"X-Request-Id": "trace-me-2"}):
        async with facade.http.post(facade.url + "/token", data={"grant_type": "nonsense"}, headers=headers) as r:
            answers.append((r.status, r.headers["X-Request-Id"]))
    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    logged = [(e["status"], e["request_id"]) for e in lines if e["event"] == "request" and e["path"] == "/token"]
    assert answers[0][1] == "trace-me-1" and answers[2][1] == "trace-me-2"
    assert logged == answers


async def test_request_lines_follow_the_configured_level(make_facade: FacadeFactory) -> None:
    """At warning (what the bench runs) a request writes no `request` line; at info it writes one, with
    its request id (the middleware skips building a line the level would drop)."""
    from proxy import log

    facade = await make_facade()
    stream = io.StringIO()
    try:
        log.configure("warning", "json", stream=stream)
        await facade.client().register()
        assert [line for line in stream.getvalue().splitlines() if '"request"' in line] == []
        log.configure("info", "json", stream=stream)
        await facade.client().register()
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        requests = [line for line in lines if line.get("event") == "request" and line.get("path") == "/register"]
        assert len(requests) == 1 and requests[0]["status"] == 201 and len(requests[0]["request_id"]) == 16
    finally:
        log.configure("info", "console")
