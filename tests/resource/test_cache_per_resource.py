"""The gateway's verified-token cache is keyed by resource (issue 22): a token checked and cached for one
protected resource is never admitted at another from the cache."""

from __future__ import annotations

import json

from tests.conftest import Facade
from tests.resource.conftest import token_for

PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


async def _status(facade: Facade, path: str, token: str) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream"}
    async with facade.http.post(facade.url + path, data=json.dumps(PING), headers=headers) as response:
        await response.read()
        return response.status, response.headers.get("WWW-Authenticate", "")


async def test_a_token_cached_for_one_resource_is_refused_at_another(gateway: Facade) -> None:
    """A token for /echo is admitted there (and so cached), then presented at /chunks, another resource
    of the same gateway: 401 invalid_token naming the audience, every time; it still works at /echo."""
    token = (await token_for(gateway, "/echo"))["access_token"]
    assert (await _status(gateway, "/echo", token))[0] == 200
    for _ in range(2):
        status, challenge = await _status(gateway, "/chunks", token)
        assert status == 401 and 'error="invalid_token"' in challenge and "(aud)" in challenge, challenge
    assert (await _status(gateway, "/echo", token))[0] == 200
