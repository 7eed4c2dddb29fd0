"""How many Redis round trips a sign-in and a refresh take (the README states these numbers).

Issue 23: surviving a failover must not cost round trips beyond what the design needs. The lineage
check lives inside the one rotation script, so a refresh stays two round trips (client, rotation).
Counted on the wire: every packet of commands a connection sends to a real redis-server (a pipeline
is one).
"""

from __future__ import annotations

import pytest

from tests.conftest import Facade

SIGN_IN = {"register": 1, "authorize": 2, "callback": 3, "token": 4}
REFRESH = 2


@pytest.mark.parametrize("redis_client", ["redis-server"], indirect=True)
async def test_a_sign_in_and_a_refresh_take_the_documented_round_trips(facade: Facade,
                                                                      round_trips: list[int]) -> None:
    """Register 1, authorize 2 (client, transaction), callback 3 (transaction, grant index, code), code
    redemption 4 (client, pending-code check, redemption, activation), refresh 2 (client, rotation; the
    upstream token still fresh)."""
    warm = facade.client()  # loads the Lua scripts once (EVALSHA's first NOSCRIPT)
    await warm.refresh((await warm.signed_in())["refresh_token"])
    client = facade.client()
    counts = {}
    round_trips[0] = 0
    await client.register()
    counts["register"] = round_trips[0]
    round_trips[0] = 0
    response, auth = await client.start()
    counts["authorize"] = round_trips[0]
    round_trips[0] = 0
    await client.follow(response, auth)
    counts["callback"] = round_trips[0]
    round_trips[0] = 0
    status, body = await client.exchange(auth)
    assert status == 200, body
    counts["token"] = round_trips[0]
    round_trips[0] = 0
    status, refreshed = await client.refresh(body["refresh_token"])
    assert status == 200, refreshed
    assert (counts, round_trips[0]) == (SIGN_IN, REFRESH)
