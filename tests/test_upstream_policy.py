"""The upstream error policy (issue 17): every row of the table at refresh, /callback, /revoke and fresh
/userinfo, against the fake OpenID provider of tests/upstreams misbehaving as the row says.

    terminal   upstream invalid_grant ...        family revoked, client hears invalid_grant
    operator   invalid_client, unauthorized_...  family kept, 503 temporarily_unavailable + Retry-After,
                                                 one error log naming the cause, metric class="operator"
    transient  5xx, 408, 429, timeout, dropped,  family kept, 503 temporarily_unavailable with Retry-After
               garbled, temporarily_unavailable, (the IdP's own when it sent one)
               server_error
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from prometheus_client import REGISTRY

from proxy.upstream.policy import Outcome, UpstreamClass, classify, retry_after
from tests import test_profiles
from tests.helpers import Client
from tests.security.conftest import events
from tests.test_profiles import CLIENT_ID, ProfileFacade, Start
from tests.upstreams import FakeOidc, Fault, OidcQuirks

start = test_profiles.start  # the fixture: a facade in front of a fake IdP
REFRESH = "refresh_token"
CODE = "authorization_code"


def failures(step: str, upstream_class: str, cause: str) -> float:
    value = REGISTRY.get_sample_value("oauth_facade_upstream_failures_total",
                                      {"step": step, "class": upstream_class, "cause": cause})
    return value or 0.0


# (fault, class, cause, Retry-After the client hears)
ROWS: list[tuple[str, Fault, str, str, str | None]] = [
    ("invalid_grant", Fault(400, {"error": "invalid_grant"}), "terminal", "invalid_grant", None),
    ("invalid_client", Fault(401, {"error": "invalid_client"}), "operator", "invalid_client", "60"),
    ("unauthorized_client", Fault(400, {"error": "unauthorized_client"}), "operator", "unauthorized_client", "60"),
    ("unsupported_grant_type", Fault(400, {"error": "unsupported_grant_type"}), "operator",
     "unsupported_grant_type", "60"),
    ("http 500", Fault(500, "internal error"), "transient", "http_500", "5"),
    ("http 503 with Retry-After", Fault(503, "maintenance", {"Retry-After": "120"}), "transient", "http_503", "120"),
    ("http 408", Fault(408, "request timeout"), "transient", "http_408", "5"),
    ("http 429 with Retry-After", Fault(429, {"error": "slow_down"}, {"Retry-After": "7"}), "transient",
     "http_429", "7"),
    ("timeout", Fault(200, "{}", delay_s=2.0), "transient", "timeout", "5"),
    ("connection dropped", Fault(drop=True), "transient", "unreachable", "5"),
    ("garbled", Fault(200, "<html>Maintenance</html>"), "transient", "garbled", "5"),
    ("temporarily_unavailable", Fault(400, {"error": "temporarily_unavailable"}), "transient",
     "temporarily_unavailable", "5"),
    ("server_error", Fault(400, {"error": "server_error"}), "transient", "server_error", "5"),
]
ROW_IDS = [row[0] for row in ROWS]


def fault_for(fault: Fault, grant_type: str) -> Fault:
    return Fault(fault.status, fault.body, dict(fault.headers), fault.delay_s, fault.drop, grant_type)


async def facade_for(start: Start, **overrides: Any) -> tuple[ProfileFacade, FakeOidc]:
    """A generic-profile facade whose upstream access tokens always count as near expiry."""
    fake = FakeOidc(OidcQuirks(access_token_ttl_s=30))  # within PROXY_UPSTREAM_REFRESH_SKEW_S
    values: dict[str, Any] = {"upstream_timeout_s": 1, "upstream_refresh_timeout_s": 1,
                              "upstream_offline_access": "scope"}
    values.update(overrides)
    return await start("generic", fake, **values), fake


async def signed_in(facade: ProfileFacade) -> tuple[Client, dict[str, Any]]:
    client = facade.client()
    return client, await client.signed_in()


# -- the table as data ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("outcome", "expected"), [
    (Outcome("token", "answer", 400, "invalid_grant"), UpstreamClass.TERMINAL),
    (Outcome("token", "answer", 200, "bad_refresh_token"), UpstreamClass.TERMINAL),  # GitHub, HTTP 200
    (Outcome("token", "answer", 401, "invalid_client"), UpstreamClass.OPERATOR),
    (Outcome("token", "answer", 200, "incorrect_client_credentials"), UpstreamClass.OPERATOR),
    (Outcome("token", "answer", 401, None), UpstreamClass.OPERATOR),  # client auth refused, no body
    (Outcome("bearer", "answer", 401, None), UpstreamClass.TERMINAL),  # the user's token is dead
    (Outcome("token", "answer", 400, "something_new"), UpstreamClass.OPERATOR),  # unknown: keep the user
    (Outcome("token", "answer", 503, "invalid_grant"), UpstreamClass.TRANSIENT),  # a gateway's 503 wins
    (Outcome("token", "answer", 429, None), UpstreamClass.TRANSIENT),
    (Outcome("token", "answer", 408, None), UpstreamClass.TRANSIENT),
    (Outcome("token", "timeout"), UpstreamClass.TRANSIENT),
    (Outcome("token", "garbled", 200), UpstreamClass.TRANSIENT),
    (Outcome("document", "rate_limited", 403), UpstreamClass.TRANSIENT),
])
def test_the_classification_is_the_table(outcome: Outcome, expected: UpstreamClass) -> None:
    """The one classification function maps each kind of upstream answer to the issue's class."""
    assert classify(outcome) is expected


@pytest.mark.parametrize(("header", "seconds"), [
    ("7", 7), ("0", 1), ("999999", 3600), ("soon", None), (None, None),
    ("Thu, 01 Jan 1970 00:01:40 GMT", 40),  # an HTTP-date, 40 s after "now" = 60
])
def test_retry_after_is_read_as_rfc_9110_says(header: str | None, seconds: int | None) -> None:
    """Delay-seconds or an HTTP-date, capped at an hour; anything else is ignored."""
    assert retry_after(header, now=60) == seconds


# -- refresh ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "fault", "upstream_class", "cause", "wait"), ROWS, ids=ROW_IDS)
async def test_refresh_follows_the_table(start: Start, captured_logs: io.StringIO, name: str, fault: Fault,
                                         upstream_class: str, cause: str, wait: str | None) -> None:
    """A client's refresh whose upstream refresh fails: terminal revokes the family (invalid_grant);
    operator and transient keep it (503 temporarily_unavailable, Retry-After), and then the presented
    refresh token still works once the IdP behaves. Each failure is counted with its class and cause."""
    facade, fake = await facade_for(start)
    client, body = await signed_in(facade)
    before = failures("upstream_refresh", upstream_class, cause)
    fake.faults["token"] = fault_for(fault, REFRESH)
    status, answer, response = await client.token({"grant_type": REFRESH, "refresh_token": body["refresh_token"],
                                                   "client_id": client.client_id})
    assert failures("upstream_refresh", upstream_class, cause) == before + 1
    fake.faults.clear()
    retried, again = await client.refresh(body["refresh_token"])
    logged = [e for e in events(captured_logs) if e["event"] == "upstream.misconfigured"]
    if upstream_class == "terminal":
        assert (status, answer["error"]) == (400, "invalid_grant")
        assert (retried, again["error"]) == (400, "invalid_grant")  # the family is gone
        return
    assert (status, answer["error"]) == (503, "temporarily_unavailable")
    assert response.headers["Retry-After"] == wait
    assert retried == 200, again
    if upstream_class == "operator":
        assert [(e["level"], e["cause"]) for e in logged] == [("error", cause)]
    else:
        assert logged == []


async def test_a_race_in_the_grace_window_while_the_upstream_fails(start: Start) -> None:
    """Two holders of one refresh token (concurrent Claude Code processes): the first one's upstream
    refresh hangs then fails with 503; the second, inside the grace window, gets the successor. The
    failure keeps that successor valid, the first one's retry gets the same successor, and the family
    refreshes on once the IdP is back."""
    facade, fake = await facade_for(start, upstream_refresh_timeout_s=5)
    client, body = await signed_in(facade)
    fake.faults["token"] = Fault(503, "busy", {"Retry-After": "9"}, delay_s=1.0, grant_type=REFRESH)
    hanging = asyncio.ensure_future(client.token({"grant_type": REFRESH, "refresh_token": body["refresh_token"],
                                                  "client_id": client.client_id}))
    while "token" not in fake.fault_hits:
        await asyncio.sleep(0.02)
    status, raced = await client.refresh(body["refresh_token"])
    assert status == 200, raced
    status, failed, response = await hanging
    assert (status, failed["error"], response.headers["Retry-After"]) == (503, "temporarily_unavailable", "9")
    fake.faults.clear()
    status, retried = await client.refresh(body["refresh_token"])
    assert (status, retried["refresh_token"]) == (200, raced["refresh_token"])
    status, onward = await client.refresh(raced["refresh_token"])
    assert status == 200, onward


async def test_on_demand_refresh_never_calls_the_upstream(start: Start) -> None:
    """PROXY_UPSTREAM_REFRESH=on-demand: a client's refresh succeeds with the upstream token expired and
    its token endpoint down, and makes no upstream call at all."""
    facade, fake = await facade_for(start, upstream_refresh="on-demand")
    client, body = await signed_in(facade)
    fake.faults["token"] = Fault(503, "down")
    calls = len(fake.token_requests)
    status, fresh = await client.refresh(body["refresh_token"])
    assert status == 200, fresh
    assert len(fake.token_requests) == calls and fake.fault_hits == []


async def test_with_client_refresh_stores_the_rotated_upstream_refresh_token(start: Start) -> None:
    """PROXY_UPSTREAM_REFRESH=with-client (the default): the upstream refresh token rotates at every client
    refresh and the facade presents the newest one next time."""
    facade, fake = await facade_for(start)
    client, body = await signed_in(facade)
    presented = []
    for _ in range(2):
        current = set(fake.refresh_tokens)
        status, body = await client.refresh(body["refresh_token"])
        assert status == 200, body
        presented.append(fake.token_requests[-1]["form"]["refresh_token"])
        assert presented[-1] in current
    assert presented[0] != presented[1]


# -- /callback ---------------------------------------------------------------------------------------------
CALLBACK_ERRORS = {"terminal": "access_denied", "operator": "server_error", "transient": "temporarily_unavailable"}


@pytest.mark.parametrize(("name", "fault", "upstream_class", "cause", "wait"), ROWS, ids=ROW_IDS)
async def test_code_redemption_follows_the_table(start: Start, name: str, fault: Fault, upstream_class: str,
                                                 cause: str, wait: str | None) -> None:
    """The upstream code redemption at /callback: terminal -> access_denied (sign in again), operator ->
    server_error, transient -> temporarily_unavailable; the client's state and iss come back, no code."""
    facade, fake = await facade_for(start)
    fake.faults["token"] = fault_for(fault, CODE)
    before = failures("callback", upstream_class, cause)
    client = facade.client()
    await client.register()
    auth = await client.authorize()
    assert auth.location.startswith(client.redirect_uri + "?"), auth.location
    assert (auth.params["error"], auth.params["state"]) == (CALLBACK_ERRORS[upstream_class], auth.state)
    assert "code" not in auth.params
    assert failures("callback", upstream_class, cause) == before + 1


# -- /revoke ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fault", "upstream_class", "cause"), [
    (None, None, None),
    (Fault(401, {"error": "invalid_client"}), "operator", "invalid_client"),
    (Fault(503, "down"), "transient", "http_503"),
    (Fault(drop=True), "transient", "unreachable"),
    (Fault(200, "{}", delay_s=2.0), "transient", "timeout"),
])
async def test_revocation_is_local_whatever_the_upstream_answers(
        start: Start, captured_logs: io.StringIO, fault: Fault | None, upstream_class: str | None,
        cause: str | None) -> None:
    """RFC 7009 at the facade: 200 and the family gone, whatever the upstream revocation does; its failure
    is classified and counted (an operator failure logged as an error), never the client's."""
    facade, fake = await facade_for(start)
    client, body = await signed_in(facade)
    if fault is not None:
        fake.faults["revoke"] = fault
    before = failures("revoke", upstream_class or "", cause or "")
    async with client.http.post(facade.url + "/revoke", data={"token": body["refresh_token"],
                                                             "client_id": client.client_id}) as response:
        status = response.status
    assert status == 200
    assert (await client.refresh(body["refresh_token"]))[0] == 400
    if fault is None:
        assert fake.revocations == [{"token_type_hint": "refresh_token"}]
        return
    assert failures("revoke", upstream_class or "", cause or "") == before + 1
    errors = [e for e in events(captured_logs) if e["event"] == "upstream.misconfigured"]
    assert len(errors) == (1 if upstream_class == "operator" else 0)


# -- fresh /userinfo -----------------------------------------------------------------------------------------
async def userinfo(facade: ProfileFacade, access_token: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with facade.http.get(facade.url + "/userinfo",
                               headers={"Authorization": f"Bearer {access_token}"}) as response:
        return response.status, await response.json(content_type=None), dict(response.headers)


@pytest.mark.parametrize(("fault", "status", "error", "wait", "family_kept"), [
    (Fault(401, "", {"WWW-Authenticate": 'Bearer error="invalid_token"'}), 401, "invalid_token", None, False),
    (Fault(403, "", {"WWW-Authenticate": 'Bearer error="insufficient_scope"'}), 503, "temporarily_unavailable",
     "60", True),
    (Fault(503, "down", {"Retry-After": "30"}), 503, "temporarily_unavailable", "30", True),
    (Fault(200, "<html>"), 503, "temporarily_unavailable", "5", True),
    (Fault(drop=True), 503, "temporarily_unavailable", "5", True),
])
async def test_fresh_userinfo_follows_the_table(start: Start, fault: Fault, status: int, error: str,
                                                wait: str | None, family_kept: bool) -> None:
    """PROXY_UPSTREAM_FRESH_USERINFO: the upstream's 401 means the user's upstream grant is gone (the
    family and its access token end: 401 invalid_token); an operator or transient failure is 503 with
    Retry-After, never stale claims passed off as fresh, and the session stays."""
    fake = FakeOidc(OidcQuirks())
    facade = await start("generic", fake, upstream_fresh_userinfo=True, upstream_timeout_s=1,
                         upstream_offline_access="scope")
    client, body = await signed_in(facade)
    assert (await userinfo(facade, body["access_token"]))[0] == 200
    fake.faults["userinfo"] = fault
    answered, document, headers = await userinfo(facade, body["access_token"])
    assert (answered, document["error"]) == (status, error)
    assert headers.get("Retry-After") == wait
    fake.faults.clear()
    assert ((await client.refresh(body["refresh_token"]))[0] == 200) is family_kept


async def test_fresh_userinfo_refreshes_a_near_expiry_upstream_token_first(start: Start) -> None:
    """Fresh userinfo needs the upstream token: one near expiry is refreshed first (also in on-demand
    mode), and an upstream invalid_grant on that refresh ends the session: 401 invalid_token."""
    fake = FakeOidc(OidcQuirks(access_token_ttl_s=30))  # within PROXY_UPSTREAM_REFRESH_SKEW_S
    facade = await start("generic", fake, upstream_fresh_userinfo=True, upstream_refresh="on-demand",
                         upstream_offline_access="scope")
    client, body = await signed_in(facade)
    refreshes = sum(r["form"].get("grant_type") == REFRESH for r in fake.token_requests)
    assert (await userinfo(facade, body["access_token"]))[0] == 200
    assert sum(r["form"].get("grant_type") == REFRESH for r in fake.token_requests) == refreshes + 1
    fake.faults["token"] = Fault(400, {"error": "invalid_grant"}, grant_type=REFRESH)
    status, _, headers = await userinfo(facade, body["access_token"])
    assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert (await client.refresh(body["refresh_token"]))[0] == 400


# -- a wrong upstream secret -----------------------------------------------------------------------------------
async def test_a_wrong_upstream_secret_keeps_the_facade_serving(start: Start) -> None:
    """The IdP stops accepting the facade's secret (rotated at the IdP, not here): discovery, JWKS and
    existing access tokens keep working; refreshes are 503 (the client keeps its tokens); nobody is
    logged out, and once the secret matches again the same refresh token works."""
    facade, fake = await facade_for(start)
    client, body = await signed_in(facade)
    fake.clients[CLIENT_ID]["secret"] = "rotated at the IdP"
    for path in ("/.well-known/oauth-authorization-server", "/jwks"):
        async with facade.http.get(facade.url + path) as response:
            assert response.status == 200, path
    assert (await userinfo(facade, body["access_token"]))[0] == 200
    status, answer = await client.refresh(body["refresh_token"])
    assert (status, answer["error"]) == (503, "temporarily_unavailable")
    secret = facade.settings.upstream_client_secret
    assert secret is not None
    fake.clients[CLIENT_ID]["secret"] = secret.get_secret_value()
    assert (await client.refresh(body["refresh_token"]))[0] == 200


async def test_fresh_userinfo_without_a_usable_upstream_token_serves_the_sign_in_claims(start: Start) -> None:
    """No upstream refresh token (PROXY_UPSTREAM_OFFLINE_ACCESS=none) and the upstream token expired:
    there is nothing to ask the upstream with, so /userinfo answers the sign-in's claims (200), and the
    session is untouched."""
    fake = FakeOidc(OidcQuirks(access_token_ttl_s=1))
    facade = await start("generic", fake, upstream_fresh_userinfo=True, upstream_offline_access="none")
    client, body = await signed_in(facade)
    assert fake.refresh_tokens == {}
    await asyncio.sleep(1.1)
    status, document, _ = await userinfo(facade, body["access_token"])
    assert status == 200 and document["sub"] == "user_2abc"
    assert fake.userinfo_requests == 0
    assert (await client.refresh(body["refresh_token"]))[0] == 200


async def test_a_refresh_that_ends_any_other_way_leaves_the_presented_token_current(
        start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only an upstream outage: when the upstream part of a refresh ends in anything but a terminal
    answer (here an exception before the IdP is asked, standing in for a bug or a store error), the
    rotation is put back. With no grace window, the client's retry of the presented token succeeds
    instead of counting as reuse and revoking the family."""
    facade, _ = await facade_for(start, refresh_grace_s=0)
    client, body = await signed_in(facade)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected before the upstream is asked")

    monkeypatch.setattr(facade.services.upstream, "refresh", broken)
    status, answer, _ = await client.token({"grant_type": REFRESH, "refresh_token": body["refresh_token"],
                                            "client_id": client.client_id})
    assert (status, answer["error"]) == (500, "server_error")
    monkeypatch.undo()
    await asyncio.sleep(0.01)  # past a zero grace window
    status, again = await client.refresh(body["refresh_token"])
    assert status == 200, again
