"""A registration in use is renewed whatever PROXY_CLIENT_TTL_S is and however little of it is left
(issue 23 item 4): its activation is recorded when its first code is redeemed, not guessed from its
remaining lifetime, so its refresh families no longer die with it while the client refreshes."""

from __future__ import annotations

from tests.conftest import FacadeFactory

HOUR = 3600
DAY = 86400


async def test_a_registration_with_a_lifetime_of_a_day_or_less_is_renewed_by_use(
        make_facade: FacadeFactory) -> None:
    """PROXY_CLIENT_TTL_S=3600 (≤ the unused lifetime): each refresh keeps the registration an hour from
    now; before, a lookup never renewed it and the client expired an hour after its sign-in."""
    facade = await make_facade(client_ttl_s=HOUR)
    client = facade.client()
    tokens = await client.signed_in()
    key = f"oauthfacade:client:{client.client_id}"
    await facade.redis.expire(key, 120)  # most of the hour has gone by
    status, refreshed = await client.refresh(tokens["refresh_token"])
    assert status == 200, refreshed
    assert HOUR - 60 < await facade.redis.ttl(key) <= HOUR


async def test_a_registration_in_its_last_day_is_renewed_by_use(make_facade: FacadeFactory) -> None:
    """Default lifetimes (30 days once used, a day unused): with less than a day left, a refresh still
    renews it to 30 days (before, a remaining lifetime under a day read as "never used")."""
    facade = await make_facade()
    client = facade.client()
    tokens = await client.signed_in()
    key = f"oauthfacade:client:{client.client_id}"
    await facade.redis.expire(key, HOUR)
    status, refreshed = await client.refresh(tokens["refresh_token"])
    assert status == 200, refreshed
    full = facade.settings.client_ttl_s
    assert full - 60 < await facade.redis.ttl(key) <= full


async def test_an_unused_registration_is_still_not_renewed_by_lookups(make_facade: FacadeFactory) -> None:
    """The marker is set by a code redemption only: /authorize lookups of a registration nobody signed in
    with leave its short lifetime alone, even with PROXY_CLIENT_TTL_S below a day."""
    facade = await make_facade(client_ttl_s=HOUR)
    client = facade.client()
    await client.register()
    key = f"oauthfacade:client:{client.client_id}"
    await facade.redis.expire(key, 300)
    for _ in range(2):
        response, _ = await client.start()
        assert response.status == 302
    assert 0 < await facade.redis.ttl(key) <= 300
