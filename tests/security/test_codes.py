"""Authorization codes: replay, double redemption, injection, mix-up and state tampering
(RFC 6749 §4.1.2 and §10.12, RFC 9700 §4.4 and §4.5, RFC 9207, RFC 7636 §1)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import fakeredis

from tests.conftest import Facade, FacadeFactory
from tests.helpers import Authorization, Client, query_of
from tests.security.conftest import html_error, kinds, snapshot


async def ready(facade: Facade) -> tuple[Client, Authorization]:
    client = facade.client()
    await client.register()
    return client, await client.authorize()


async def to_callback(facade: Facade, client: Client) -> tuple[Authorization, str]:
    """Walk to the IdP and back, stopping before /callback: (authorization, callback URL)."""
    response, auth = await client.start()
    assert response.status == 302
    upstream = await client.get(response.headers["Location"])
    callback_url = upstream.headers["Location"]
    assert callback_url.startswith(facade.url + "/callback?")
    return auth, callback_url


async def test_a_replayed_code_is_refused_and_revokes_what_it_issued(facade: Facade) -> None:
    """RFC 6749 §4.1.2: a code used twice is invalid_grant, and the tokens issued from it are revoked."""
    client, auth = await ready(facade)
    status, first = await client.exchange(auth)
    assert status == 200
    status, second = await client.exchange(auth)
    assert (status, second["error"]) == (400, "invalid_grant")
    assert "family" not in kinds(await snapshot(facade.redis))
    status, refreshed = await client.refresh(first["refresh_token"])
    assert (status, refreshed["error"]) == (400, "invalid_grant")
    async with facade.http.get(facade.url + "/userinfo",
                               headers={"Authorization": f"Bearer {first['access_token']}"}) as response:
        assert response.status == 401


async def test_concurrent_redemptions_yield_one_token_response(facade: Facade) -> None:
    """RFC 6749 §4.1.2 ("at most once", atomically): ten parallel redemptions give one 200 and nine
    invalid_grant; since the server cannot tell the racer from an attacker, the winner's tokens are
    revoked too (node-oidc-provider, oidcc-codereuse)."""
    client, auth = await ready(facade)
    results = await asyncio.gather(*(client.exchange(auth) for _ in range(10)))
    assert sorted(status for status, _ in results) == [200] + [400] * 9
    assert {body["error"] for status, body in results if status == 400} == {"invalid_grant"}
    winner = next(body for status, body in results if status == 200)
    status, _ = await client.refresh(winner["refresh_token"])
    assert status == 400
    assert "family" not in kinds(await snapshot(facade.redis))


async def test_a_code_cannot_be_redeemed_by_another_client(facade: Facade) -> None:
    """RFC 9700 §4.5 (code injection) and RFC 6749 §4.1.3: a code is bound to its client, even when the
    other client also holds the verifier; nothing changes and the rightful client still redeems."""
    client, auth = await ready(facade)
    thief = facade.client()
    await thief.register(redirect_uris=[client.redirect_uri])
    before = await snapshot(facade.redis)
    status, body = await thief.exchange(auth, client_id=thief.client_id)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert await snapshot(facade.redis) == before
    assert (await client.exchange(auth))[0] == 200


async def test_an_attackers_upstream_code_in_the_victims_callback_fails_pkce(facade: Facade) -> None:
    """RFC 9700 §4.5: the attacker's own upstream code, injected into the victim's /callback with the
    victim's state, is exchanged with the victim's transaction's verifier and refused by the IdP; the
    victim's client gets access_denied and no facade code exists."""
    attacker, victim = facade.client(), facade.client()
    await attacker.register()
    await victim.register()
    _, attacker_callback = await to_callback(facade, attacker)
    victim_auth, victim_callback = await to_callback(facade, victim)
    injected = {**query_of(victim_callback), "code": query_of(attacker_callback)["code"]}
    answer = await victim.get(facade.url + "/callback?" + urlencode(injected))
    assert answer.status == 302
    params = query_of(answer.headers["Location"])
    assert answer.headers["Location"].startswith(victim.redirect_uri + "?")
    assert (params["error"], params["state"]) == ("access_denied", victim_auth.state)
    assert "code" not in params
    assert "code" not in kinds(await snapshot(facade.redis))
    assert facade.idp_state.token_requests[-1]["code"] == injected["code"]  # it was tried, and failed


async def test_a_code_from_another_issuer_is_unknown_here(make_facade: FacadeFactory) -> None:
    """RFC 9700 §4.4 (mix-up): a code issued by another authorization server (another facade, its own
    store) is invalid_grant here and changes nothing; it stays valid where it was issued."""
    here = await make_facade()
    elsewhere = await make_facade(redis=fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(),
                                                                 decode_responses=True, version=(7, 2)))
    theirs = elsewhere.client()
    await theirs.register()
    auth = await theirs.authorize()
    assert auth.params["iss"] == elsewhere.url != here.url
    mine = here.client()
    await mine.register(redirect_uris=[theirs.redirect_uri])
    before = await snapshot(here.redis)
    status, body, _ = await mine.token({
        "grant_type": "authorization_code", "code": auth.params["code"], "code_verifier": auth.verifier,
        "redirect_uri": auth.redirect_uri, "client_id": mine.client_id})
    assert (status, body["error"]) == (400, "invalid_grant")
    assert await snapshot(here.redis) == before
    assert (await theirs.exchange(auth))[0] == 200


async def test_an_upstream_answer_naming_another_issuer_is_refused(facade: Facade) -> None:
    """RFC 9207 §2.4 and RFC 9700 §4.4: an authorization response whose `iss` is not the upstream's is a
    mix-up; its code is never sent to the upstream's token endpoint and the client gets access_denied."""
    client = facade.client()
    await client.register()
    auth, callback_url = await to_callback(facade, client)
    exchanges = len(facade.idp_state.token_requests)
    mixed = {**query_of(callback_url), "iss": "https://evil.example"}
    answer = await client.get(facade.url + "/callback?" + urlencode(mixed))
    assert answer.status == 302
    params = query_of(answer.headers["Location"])
    assert (params["error"], params["state"], params["iss"]) == ("access_denied", auth.state, facade.url)
    assert len(facade.idp_state.token_requests) == exchanges
    assert "code" not in kinds(await snapshot(facade.redis))


async def test_a_tampered_upstream_state_is_unknown_and_spares_the_real_one(facade: Facade) -> None:
    """RFC 6749 §10.12: /callback with a state that is not ours is a page, calls nobody, and leaves the
    real transaction usable."""
    client = facade.client()
    await client.register()
    auth, callback_url = await to_callback(facade, client)
    params = query_of(callback_url)
    before = await snapshot(facade.redis)
    assert "tx" in kinds(before)
    for state in (params["state"][:-1] + ("A" if params["state"][-1] != "A" else "B"), params["state"] + "x", ""):
        answer = await client.get(facade.url + "/callback?" + urlencode({**params, "state": state}))
        assert answer.status == 400 and "Location" not in answer.headers
        assert html_error(await answer.text()) == "invalid_request"
    assert facade.idp_state.token_requests == []
    assert await snapshot(facade.redis) == before
    done = await client.follow(await client.get(callback_url), auth)
    assert (await client.exchange(done))[0] == 200


async def test_a_callback_without_code_or_error_does_not_use_up_the_transaction(facade: Facade) -> None:
    """RFC 6749 §4.1.2 / security-cases SEC-27: a malformed answer carrying a valid state but no code is
    refused without consuming the transaction, so the real answer still completes."""
    client = facade.client()
    await client.register()
    auth, callback_url = await to_callback(facade, client)
    before = await snapshot(facade.redis)
    answer = await client.get(facade.url + "/callback?" + urlencode({"state": query_of(callback_url)["state"]}))
    assert answer.status == 400 and "Location" not in answer.headers
    assert html_error(await answer.text()) == "invalid_request"
    assert await snapshot(facade.redis) == before
    done = await client.follow(await client.get(callback_url), auth)
    assert (await client.exchange(done))[0] == 200


async def test_the_clients_state_comes_back_byte_for_byte(facade: Facade) -> None:
    """RFC 6749 §4.1.2: state is opaque and returned exactly; tampering-prone characters survive."""
    client = facade.client()
    await client.register()
    state = "a b+c/d?e=f&g%h\r\nSet-Cookie: x=1;é"
    auth = await client.authorize(state=state)
    assert auth.params["state"] == state
