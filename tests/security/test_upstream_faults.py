"""Upstream IdP faults against real local servers: slow, down, garbage, bad id_tokens, key rotation
(the security issue §3, security-cases SEC-31/SEC-67/SEC-68, OIDC Core §3.1.3.7 and §10.1.1,
RFC 6749 §4.1.2.1). Always a bounded wait, a clear error to the client, a log line with the cause,
never a 500, no code issued, and a new sign-in works once the IdP behaves."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import pytest

from proxy.devidp.app import rotate_key
from proxy.upstream import idtoken
from tests.conftest import Facade, FacadeFactory, free_port
from tests.helpers import Authorization, Client
from tests.security.conftest import events, kinds, snapshot


async def sign_in(facade: Facade) -> tuple[Client, Authorization]:
    client = facade.client()
    if not client.client_id:
        await client.register()
    return client, await client.authorize()


def assert_failed(facade: Facade, client: Client, auth: Authorization, error: str) -> None:
    assert auth.location.startswith(client.redirect_uri + "?"), auth.location
    params = auth.params
    assert (params["error"], params["state"], params["iss"]) == (error, auth.state, facade.url)
    assert "code" not in params


def failure_logged(stream: io.StringIO, cause: str) -> None:
    logged = events(stream)
    assert not [e for e in logged if e["event"] == "error.unexpected"], "a traceback was logged"
    assert any(e["event"] == "request.failed" and cause in str(e.get("detail")) for e in logged), \
        f"no request.failed line naming {cause!r}"


async def recovers(facade: Facade) -> None:
    facade.idp_config.faults = {}  # new dicts: the test parameters are shared by the store variants
    facade.idp_config.foreign_key = False
    facade.idp_config.id_token_claims = {}
    facade.idp_config.id_token_alg_none = False
    facade.idp_config.tamper_id_token = facade.idp_config.wrong_nonce = False
    client, auth = await sign_in(facade)
    assert (await client.exchange(auth))[0] == 200


@pytest.mark.parametrize(("fault", "error", "cause"), [
    ("slow", "temporarily_unavailable", "timed out"),
    ("500", "temporarily_unavailable", "HTTP 500"),
    # Garbled answers are transient under the upstream error policy (proxy/upstream/policy.py).
    ("html", "temporarily_unavailable", "token_exchange"),
    ("truncated", "temporarily_unavailable", "token_exchange"),
    ("array", "temporarily_unavailable", "not a JSON object"),
])
async def test_a_faulty_token_endpoint_is_a_clear_error_to_the_client(
        make_facade: FacadeFactory, captured_logs: io.StringIO, fault: str, error: str, cause: str) -> None:
    """SEC-67: the IdP's token endpoint is slow past PROXY_UPSTREAM_TIMEOUT_S, fails with 500 or
    answers garbage: the client's redirect_uri gets temporarily_unavailable (transient) or
    server_error (garbage) with its state and iss, within the timeout; one log line names the cause."""
    facade = await make_facade(upstream_timeout_s=0.5, idp={"faults": {"token": fault}, "fault_delay_s": 3})
    started = time.monotonic()
    client, auth = await sign_in(facade)
    assert time.monotonic() - started < 2.5
    assert_failed(facade, client, auth, error)
    assert not {"code", "family", "tx"} & set(kinds(await snapshot(facade.redis)))
    failure_logged(captured_logs, cause)
    await recovers(facade)


@pytest.mark.parametrize(("endpoint", "fault", "error", "cause"), [
    ("jwks", "500", "temporarily_unavailable", "jwks: HTTP 500"),
    ("jwks", "html", "temporarily_unavailable", "jwks: body is not JSON"),  # garbled: transient
    ("jwks", "slow", "temporarily_unavailable", "jwks: timed out"),
])
async def test_a_faulty_jwks_endpoint_is_a_clear_error(make_facade: FacadeFactory, captured_logs: io.StringIO,
                                                        endpoint: str, fault: str, error: str, cause: str) -> None:
    """SEC-67 (JWKS down): the id_token cannot be checked, so no code; the client hears why in one word."""
    facade = await make_facade(upstream_timeout_s=0.5, idp={"faults": {endpoint: fault}, "fault_delay_s": 3})
    client, auth = await sign_in(facade)
    assert_failed(facade, client, auth, error)
    failure_logged(captured_logs, cause)
    await recovers(facade)


@pytest.mark.parametrize(("fault", "error"), [("500", "temporarily_unavailable"), ("html", "server_error"),
                                              ("slow", "temporarily_unavailable")])
async def test_faulty_discovery_is_answered_at_authorize(make_facade: FacadeFactory, fault: str, error: str) -> None:
    """SEC-67: discovery happens on first use; when it fails, /authorize answers the verified client
    with the error and stores no transaction."""
    facade = await make_facade(upstream_timeout_s=0.5, idp={"faults": {"discovery": fault}, "fault_delay_s": 3})
    client = facade.client()
    await client.register()
    response, auth = await client.start()
    assert response.status == 302
    auth.location = response.headers["Location"]
    assert_failed(facade, client, auth, error)
    assert "tx" not in kinds(await snapshot(facade.redis))
    await recovers(facade)


async def test_an_upstream_on_a_closed_port_is_temporarily_unavailable(
        make_facade: FacadeFactory, captured_logs: io.StringIO) -> None:
    """SEC-67 (IdP down): nothing listens at the upstream; /authorize answers temporarily_unavailable
    with Retry-After semantics left to the client, and logs the connection failure."""
    facade = await make_facade(upstream_issuer=f"http://127.0.0.1:{free_port()}")
    client = facade.client()
    await client.register()
    response, auth = await client.start()
    auth.location = response.headers["Location"]
    assert_failed(facade, client, auth, "temporarily_unavailable")
    failure_logged(captured_logs, "ClientConnectorError")


async def test_a_token_endpoint_that_went_down_mid_flow(make_facade: FacadeFactory,
                                                         captured_logs: io.StringIO) -> None:
    """SEC-67: the IdP's token endpoint is down when the browser comes back (its discovery was fine):
    temporarily_unavailable to the client, the cause in the log."""
    facade = await make_facade(idp={"discovery_overrides": {"token_endpoint": f"http://127.0.0.1:{free_port()}/t"}})
    client, auth = await sign_in(facade)
    assert_failed(facade, client, auth, "temporarily_unavailable")
    failure_logged(captured_logs, "token_exchange: ClientConnectorError")


@pytest.mark.parametrize(("case", "idp"), [
    ("bad signature", {"tamper_id_token": True}),
    ("signed with a key not in the JWKS", {"foreign_key": True}),
    ("alg none", {"id_token_alg_none": True}),
    ("aud is another client", {"id_token_claims": {"aud": "someone-else"}}),
    ("iss is another issuer", {"id_token_claims": {"iss": "https://evil.example"}}),
    ("wrong nonce", {"wrong_nonce": True}),
    ("no nonce", {"id_token_claims": {"nonce": None}}),
    ("non-ASCII nonce", {"id_token_claims": {"nonce": "nonce-é-\u202e"}}),
    ("expired", {"id_token_claims": {"exp": int(time.time()) - 3600}}),
    ("issued in the future", {"id_token_claims": {"iat": int(time.time()) + 3600}}),
    ("no sub", {"id_token_claims": {"sub": None}}),
    ("several audiences, azp not us", {"id_token_claims": {"aud": ["facade", "other"], "azp": "other"}}),
])
async def test_a_bad_upstream_id_token_never_becomes_a_code(make_facade: FacadeFactory, captured_logs: io.StringIO,
                                                             case: str, idp: dict[str, Any]) -> None:
    """SEC-31, OIDC Core §3.1.3.7, RFC 8725 §3.1: the upstream id_token is validated (signature against
    the upstream JWKS, iss, aud/azp, nonce, exp, iat, sub); any failure is server_error to the client,
    a log line naming the check, no code, never a 500."""
    facade = await make_facade(idp=idp)
    client, auth = await sign_in(facade)
    assert_failed(facade, client, auth, "server_error")
    assert "code" not in kinds(await snapshot(facade.redis))
    failure_logged(captured_logs, "id_token")
    await recovers(facade)


async def test_an_unknown_kid_refetches_the_jwks_once(make_facade: FacadeFactory,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """SEC-68 / OIDC Core §10.1.1: an id_token whose kid is unknown makes the facade refetch the JWKS
    once; still unknown, it is rejected; further unknown kids within the refetch interval do not
    refetch (an attacker cannot make the facade hammer the IdP)."""
    monkeypatch.setattr(idtoken, "REFETCH_INTERVAL_S", 2.0)
    facade = await make_facade()
    client, auth = await sign_in(facade)
    assert (await client.exchange(auth))[0] == 200
    assert facade.idp_state.arrivals.count("jwks") == 1
    await asyncio.sleep(2.1)  # the first fetch is older than the interval
    facade.idp_config.foreign_key = True
    for _ in range(3):
        _, failed = await sign_in(facade)
        assert failed.params["error"] == "server_error"
    assert facade.idp_state.arrivals.count("jwks") == 2


async def test_upstream_key_rotation_is_followed(make_facade: FacadeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """SEC-68 / OIDC Core §10.1.1: the IdP rotates to a new key and drops the old one; the next
    id_token's new kid triggers a JWKS refetch and the sign-in succeeds, with no restart."""
    monkeypatch.setattr(idtoken, "REFETCH_INTERVAL_S", 0.0)  # the 5 s refetch floor, not under test here
    facade = await make_facade()
    client, auth = await sign_in(facade)
    assert (await client.exchange(auth))[0] == 200
    old_kid = facade.idp_state.keys[0].kid
    new = rotate_key(facade.idp_state, keep_old=False)
    assert new.kid != old_kid
    client, auth = await sign_in(facade)
    status, body = await client.exchange(auth)
    assert status == 200, body
    assert facade.idp_state.arrivals.count("jwks") == 2
