"""Issue 22 finding 6: an access token does not outlive its client's registration where the facade itself
answers: once the registration is deleted, the gateway refuses it (401 invalid_token), /userinfo refuses
it, /introspect calls it inactive, and token exchange will not trade it; a live client's token still works
everywhere (so the refusals are about the deletion, not the test)."""

from __future__ import annotations

import base64
from pathlib import Path

from proxy.clients.secrets import hash_secret
from tests.conftest import Facade, FacadeFactory, free_port

EXCHANGE = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token"}


async def _standing(facade: Facade, token: str, rs: dict[str, str]) -> dict[str, object]:
    """What each place the facade answers says about `token`."""
    seen: dict[str, object] = {}
    ping = '{"jsonrpc": "2.0", "id": 1, "method": "ping"}'
    async with facade.http.post(facade.url + "/mcp", data=ping, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream"}) as response:
        seen["gateway"] = response.status
        if response.status == 200:  # the echo backend: what reached it
            echoed = (await response.json())["headers"]
            seen["gateway"] = (200, echoed["x-auth-request-client-id"])
    async with facade.http.get(facade.url + "/userinfo", headers={"Authorization": f"Bearer {token}"}) as response:
        seen["userinfo"] = response.status
    async with facade.http.post(facade.url + "/introspect", data={"token": token}, headers=rs) as response:
        assert response.status == 200
        seen["introspect"] = (await response.json())["active"]
    async with facade.http.post(facade.url + "/token", data={**EXCHANGE, "subject_token": token},
                                headers=rs) as response:
        seen["exchange"] = response.status if response.status == 200 else (await response.json())["error"]
    return seen


async def test_tokens_of_a_deleted_registration_are_refused_everywhere(make_facade: FacadeFactory, sdk_backend: str,
                                                                      tmp_path: Path) -> None:
    """Deleting a DCR registration ends its token's standing at the gateway (even with the token cached as
    verified), /userinfo, /introspect and token exchange; another client's token is unaffected."""
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    servers = tmp_path / "resource-servers.toml"
    servers.write_text(f'[[resource_server]]\nid = "rs"\nsecret_hash = "{hash_secret("rs secret")}"\n'
                       f'resources = ["{resource}"]\ntoken_exchange = true\n')
    facade = await make_facade(port=port, gateway_backends=f"{resource}={sdk_backend}/raw/echo",
                               resource_servers_file=str(servers))
    rs = {"Authorization": "Basic " + base64.b64encode(b"rs:rs secret").decode()}
    gone, kept = facade.client(), facade.client()
    gone_token = (await gone.signed_in(resource=resource))["access_token"]
    kept_token = (await kept.signed_in(resource=resource))["access_token"]
    live = {"gateway": 200, "userinfo": 200, "introspect": True, "exchange": 200}
    assert await _standing(facade, gone_token, rs) == {**live, "gateway": (200, [gone.client_id])}

    assert await facade.redis.delete(f"oauthfacade:client:{gone.client_id}") == 1
    assert await _standing(facade, gone_token, rs) == {"gateway": 401, "userinfo": 401, "introspect": False,
                                                       "exchange": "invalid_grant"}
    assert await _standing(facade, kept_token, rs) == {**live, "gateway": (200, [kept.client_id])}
