"""Issue 22 finding 2: a shared client stays usable while one address misbehaves. A pre-registered
confidential connector (claude.ai's for a whole organisation) and a resource server at token exchange
used to share one per-client bucket counted before any check, so ~300 wrong secrets from anywhere made
every real request 429. Wrong secrets now count per (client, source address): past
PROXY_RATE_LIMIT_AUTH_FAILURES_PER_MIN that address gets 429 for that client, even with the right
secret, and every other address is answered as before."""

from __future__ import annotations

import base64
from pathlib import Path

from proxy.clients.secrets import hash_secret
from tests.clients.test_preregistered import SECRET, clients_file, form_basic
from tests.conftest import FacadeFactory
from tests.security.test_rate_limits import LOOPBACK, fresh_window

ATTACKER, USER = "203.0.113.66", "198.51.100.7"


async def test_wrong_secrets_for_a_connector_cut_off_their_address_only(make_facade: FacadeFactory,
                                                                        tmp_path: Path) -> None:
    """Past the failure limit the guessing address gets 429 for that client even with the right secret;
    the connector's real traffic from another address still gets its tokens (200)."""
    facade = await make_facade(clients_file=str(clients_file(tmp_path)), rate_limits=True, trusted_proxies=LOOPBACK,
                               rate_limit_auth_failures_per_min=3, rate_limit_token_per_min=50)
    await fresh_window()
    form = {"grant_type": "client_credentials"}

    async def attempt(address: str, secret: str) -> int:
        status, _, _ = await facade.client().token(form, {"Authorization": form_basic("reporting-job", secret),
                                                          "X-Forwarded-For": address})
        return status

    assert [await attempt(ATTACKER, "guess") for _ in range(5)] == [401, 401, 401, 429, 429]
    assert await attempt(ATTACKER, SECRET) == 429
    assert [await attempt(USER, SECRET) for _ in range(3)] == [200, 200, 200]
    assert await attempt(USER, "typo") == 401  # one mistake of the real user's is just that


async def test_wrong_secrets_at_token_exchange_cut_off_their_address_only(make_facade: FacadeFactory,
                                                                          tmp_path: Path) -> None:
    """The same for a resource server authenticating at token exchange: the guessing address is cut off,
    the real server's exchanges from its own address are still judged (here: a bogus subject token is
    400 invalid_grant, not 429)."""
    path = tmp_path / "resource-servers.toml"
    path.write_text(f'[[resource_server]]\nid = "rs"\nsecret_hash = "{hash_secret("right")}"\n'
                    'resources = ["https://mcp.example.com/mcp"]\ntoken_exchange = true\n')
    facade = await make_facade(resources="https://mcp.example.com/mcp", resource_servers_file=str(path),
                               rate_limits=True, trusted_proxies=LOOPBACK, rate_limit_auth_failures_per_min=3,
                               rate_limit_token_per_min=50)
    await fresh_window()
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": "a.b.c",
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token"}

    async def attempt(address: str, secret: str) -> tuple[int, str]:
        auth = "Basic " + base64.b64encode(f"rs:{secret}".encode()).decode()
        async with facade.http.post(facade.url + "/token", data=form,
                                    headers={"Authorization": auth, "X-Forwarded-For": address}) as response:
            return response.status, (await response.json())["error"]

    assert [(await attempt(ATTACKER, "guess"))[0] for _ in range(5)] == [401, 401, 401, 429, 429]
    assert (await attempt(ATTACKER, "right"))[0] == 429
    assert [await attempt(USER, "right") for _ in range(3)] == [(400, "invalid_grant")] * 3
