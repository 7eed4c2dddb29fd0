"""Redis faults against a real redis-server that the test kills, pauses and restarts (the security
issue §3, security-cases SEC-65/SEC-66): 503 with Retry-After and an OAuth error, within a bounded
time; no partial writes; the flow works again when Redis returns; a facade restart loses nothing."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from proxy.keys import generate, render_jwks
from tests.conftest import Facade
from tests.helpers import Client, query_of
from tests.security.conftest import LiveFacadeFactory, LiveRedis, html_error, kinds, snapshot

FORM_FIELDS = re.compile(r'name="(consent_id|csrf)" value="([^"]+)"')


def form_of(html: str) -> dict[str, str]:
    return dict(FORM_FIELDS.findall(html))


async def assert_503(response: aiohttp.ClientResponse, kind: str, redis: LiveRedis) -> None:
    """503, Retry-After, temporarily_unavailable as JSON or as a page, and nothing internal in the body."""
    text = await response.text()
    assert response.status == 503, (response.url, text[:200])
    assert int(response.headers["Retry-After"]) > 0
    if kind == "json":
        assert response.content_type == "application/json"
        assert (await response.json())["error"] == "temporarily_unavailable"
    else:
        assert response.content_type == "text/html"
        assert html_error(text) == "temporarily_unavailable"
    for leak in ("Traceback", "redis", "Redis", str(redis.server.port), "ConnectionError"):
        assert leak not in text, leak


async def test_every_endpoint_answers_503_while_redis_is_down_and_resumes_after(
        live_facade: LiveFacadeFactory, live_redis: LiveRedis, inspector: Any) -> None:
    """SEC-65: with Redis gone, every stateful endpoint is 503 + Retry-After + temporarily_unavailable
    (JSON for clients, a page for browsers) within a bounded time, never a 500; metadata, JWKS and
    /healthz still answer, /readyz says 503. The failed requests consumed nothing: after the restart
    the pending consent, the upstream answer, the code and the refresh token all still work."""
    facade = await live_facade(consent=True, rate_limits=True, introspection_secret="rs")
    client = facade.client()
    tokens = await signed_in_with_consent(client)
    pending_page, _ = await client.start(state="pending")  # remembered: straight upstream
    at_idp = await client.get(pending_page.headers["Location"])
    callback_url = at_idp.headers["Location"]
    other = Client(facade, client_id=client.client_id)
    consent_page, _ = await other.start()
    consent_form = {**form_of(await consent_page.text()), "decision": "approve"}
    code_auth = await client.authorize()
    before = await snapshot(inspector)

    live_redis.kill()
    started = time.monotonic()
    http = facade.http
    async with http.post(facade.url + "/register", json={"redirect_uris": ["https://a.example/cb"]}) as r:
        await assert_503(r, "json", live_redis)
    await assert_503(await client.get(facade.url + "/authorize?" + urlencode(client.authorize_params(
        verifier="v" * 43, state="s", nonce=None, redirect_uri=client.redirect_uri))), "html", live_redis)
    await assert_503(await other.post_form(facade.url + "/consent", consent_form), "html", live_redis)
    await assert_503(await client.get(callback_url), "html", live_redis)
    for form in ({"grant_type": "authorization_code", "code": code_auth.params["code"],
                  "code_verifier": code_auth.verifier, "redirect_uri": code_auth.redirect_uri},
                 {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}):
        async with http.post(facade.url + "/token", data={**form, "client_id": client.client_id}) as r:
            await assert_503(r, "json", live_redis)
    async with http.post(facade.url + "/revoke", data={"token": tokens["refresh_token"],
                                                       "client_id": client.client_id}) as r:
        await assert_503(r, "json", live_redis)
    async with http.post(facade.url + "/introspect", data={"token": tokens["access_token"]},
                         headers={"Authorization": "Bearer rs"}) as r:
        await assert_503(r, "json", live_redis)
    async with http.get(facade.url + "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}) as r:
        await assert_503(r, "json", live_redis)
    async with http.get(facade.url + "/readyz") as r:
        assert r.status == 503 and r.headers["Retry-After"]
    for path in ("/healthz", "/jwks", "/.well-known/oauth-authorization-server"):
        async with http.get(facade.url + path) as r:
            assert r.status == 200, path
    assert time.monotonic() - started < 10  # twelve requests, each answered without waiting on retries

    live_redis.restart()
    await inspector.connection_pool.disconnect()  # the test's own client: its sockets died with Redis
    assert await snapshot(inspector) == before  # nothing was half-written or consumed
    upstream = await other.post_form(facade.url + "/consent", consent_form)
    assert upstream.status == 302
    resumed = await client.get(callback_url)
    assert resumed.status == 302 and query_of(resumed.headers["Location"])["state"] == "pending"
    assert (await client.exchange(code_auth))[0] == 200
    assert (await client.refresh(tokens["refresh_token"]))[0] == 200


async def signed_in_with_consent(client: Client) -> dict[str, Any]:
    await client.register()
    response, auth = await client.start()
    form = form_of(await response.text())
    upstream = await client.post_form(client.facade.url + "/consent", {**form, "decision": "approve"})
    auth = await client.follow(upstream, auth)
    status, body = await client.exchange(auth)
    assert status == 200, body
    return body


async def test_a_redis_that_stops_answering_is_503_within_the_timeout(
        live_facade: LiveFacadeFactory, live_redis: LiveRedis) -> None:
    """SEC-65, timing out: a Redis that accepts connections but answers nothing (SIGSTOP) costs one
    PROXY_REDIS_TIMEOUT_S, then 503 (no retry of a command that may have run); when it answers again,
    the same refresh token works (a rotation that did run is replayed within the grace window)."""
    facade = await live_facade(redis_timeout_s=0.3)
    client = facade.client()
    tokens = await client.signed_in()
    live_redis.pause()
    try:
        started = time.monotonic()
        async with facade.http.post(facade.url + "/token", data={
                "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                "client_id": client.client_id}) as response:
            await assert_503(response, "json", live_redis)
        response, _ = await client.start()
        await assert_503(response, "html", live_redis)
        assert time.monotonic() - started < 3
    finally:
        live_redis.resume()
    status, body = await client.refresh(tokens["refresh_token"])
    assert status == 200, body


async def test_redis_dying_between_taking_the_transaction_and_writing_the_code_leaves_nothing(
        live_facade: LiveFacadeFactory, live_redis: LiveRedis, inspector: Any) -> None:
    """The security issue §3 ("no partial writes"): Redis dies while /callback waits on the IdP, after
    the transaction was taken and before the code is written. The client gets temporarily_unavailable
    with its state; after Redis returns (append-only file), neither the transaction nor a code
    exists, and a new sign-in works."""
    facade = await live_facade()
    facade.idp_config.faults["token"] = "slow"
    facade.idp_config.fault_delay_s = 1.0
    client = facade.client()
    await client.register()
    response, auth = await client.start()
    at_idp = await client.get(response.headers["Location"])
    assert "tx" in kinds(await snapshot(inspector))
    answer = asyncio.create_task(client.get(at_idp.headers["Location"]))
    deadline = time.monotonic() + 10
    while "token" not in facade.idp_state.arrivals:  # the transaction is taken; the exchange is in flight
        assert time.monotonic() < deadline, "the callback never reached the IdP's token endpoint"
        await asyncio.sleep(0.02)
    live_redis.kill()
    back = await answer
    assert back.status == 302
    params = query_of(back.headers["Location"])
    assert back.headers["Location"].startswith(client.redirect_uri + "?")
    assert (params["error"], params["state"], params["iss"]) == ("temporarily_unavailable", auth.state, facade.url)
    assert "code" not in params

    live_redis.restart()
    await inspector.connection_pool.disconnect()
    assert kinds(await snapshot(inspector)) == ["client", "keys"]  # no transaction, no code, no family
    facade.idp_config.faults.clear()
    again = await client.authorize()
    assert (await client.exchange(again))[0] == 200


async def test_a_redemption_that_failed_on_redis_consumed_nothing(
        live_facade: LiveFacadeFactory, live_redis: LiveRedis, inspector: Any) -> None:
    """The security issue §3: a code redemption refused with 503 leaves the code exactly as it was (the
    redemption is one Lua step), so the client's retry after the outage succeeds."""
    facade = await live_facade()
    client = facade.client()
    await client.register()
    auth = await client.authorize()
    before = await snapshot(inspector)
    live_redis.kill()
    status, body = await client.exchange(auth)
    assert (status, body["error"]) == (503, "temporarily_unavailable")
    live_redis.restart()
    await inspector.connection_pool.disconnect()
    assert await snapshot(inspector) == before
    assert (await client.exchange(auth))[0] == 200


@pytest.mark.parametrize("keys", ["keys file", "generated key kept in Redis"])
async def test_a_facade_restart_at_every_step_loses_nothing(
        live_facade: LiveFacadeFactory, tmp_path: Path, keys: str) -> None:
    """The security issue §3 / SEC-66: all state is in Redis. Consent page from one process, approval on
    a second, the IdP's answer on a third, the token and a refresh on a fourth (same port, same Redis,
    same keys): the flow completes and the id_token verifies against the last process's /jwks."""
    settings: dict[str, Any] = {"consent": True}
    if keys == "keys file":
        path = tmp_path / "keys.jwks"
        path.write_text(render_jwks([generate()]))
        settings["signing_keys_file"] = str(path)
    first = await live_facade(**settings)

    async def restart(previous: Facade) -> Facade:
        await previous.server.close()
        return await live_facade(port=previous.settings.port, idp=previous, **settings)

    client = first.client()
    await client.register()
    response, auth = await client.start()
    form = form_of(await response.text())
    second = await restart(first)
    upstream = await client.post_form(second.url + "/consent", {**form, "decision": "approve"})
    assert upstream.status == 302
    at_idp = await client.get(upstream.headers["Location"])
    third = await restart(second)
    back = await client.get(at_idp.headers["Location"])
    assert back.status == 302
    auth.location = back.headers["Location"]
    fourth = await restart(third)
    client.facade = fourth
    status, body = await client.exchange(auth)
    assert status == 200, body
    await client.verify_id_token(body["id_token"], nonce=auth.nonce, access_token=body["access_token"])
    assert (await client.refresh(body["refresh_token"]))[0] == 200


def test_every_test_of_the_suite_has_a_time_bound(pytestconfig: pytest.Config) -> None:
    """Issue 14 ("tests that prove less"): polling loops without a bound hang CI instead of failing.
    pytest-timeout is active and the suite's default bound (pyproject `timeout`) is generous but finite;
    the loops in this file and in tests/test_replicas.py carry their own deadlines as well."""
    assert pytestconfig.pluginmanager.hasplugin("timeout"), "pytest-timeout is not installed (pyproject test extra)"
    assert 60 <= float(pytestconfig.getini("timeout")) <= 600
