"""An enterprise IdP for the jwt-bearer (ID-JAG) tests: the bundled dev IdP, served over real TLS on
https://localhost:<free port> with the certificate of a CA the test makes, trusted by the facade through
PROXY_CIMD_CA_FILE and PROXY_CIMD_DEV_HOSTS (the one outbound fetcher's development settings). A client
signs its user in there (authorization code + PKCE) and trades the id_token for an ID-JAG (RFC 8693),
exactly as an MCP client does at Okta."""

from __future__ import annotations

import functools
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.clients.secrets import hash_secret as slow_hash
from proxy.devidp import DevIdpConfig, create_devidp_app
from proxy.devidp.app import CONFIG, STATE, DevIdpState
from proxy.devidp.idjag import ID_JAG_TOKEN_TYPE, ID_TOKEN_TYPE, TOKEN_EXCHANGE
from tests.clients.tls import TestPKI, make_pki
from tests.conftest import Facade, FacadeFactory, free_port
from tests.helpers import basic, query_of, s256

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
IDP_CLIENT, IDP_SECRET = "mcp-client-at-idp", "idp-secret-1"
IDP_REDIRECT = "https://client.example/callback"
AGENT, AGENT_SECRET = "agent", "agent-secret-1"
OTHER, OTHER_SECRET = "other-agent", "other-secret-1"


@dataclass
class EnterpriseIdp:
    """A running enterprise IdP and a client session that trusts its certificate."""

    url: str
    config: DevIdpConfig
    state: DevIdpState
    http: aiohttp.ClientSession

    async def id_token(self, user: str = "alice") -> str:
        """SSO: the client signs `user` in at the IdP (the dev IdP needs no password)."""
        verifier = secrets.token_urlsafe(48)
        async with self.http.get(self.url + "/authorize", allow_redirects=False, params={
                "response_type": "code", "client_id": IDP_CLIENT, "redirect_uri": IDP_REDIRECT, "scope": "openid",
                "code_challenge": s256(verifier), "code_challenge_method": "S256", "login_hint": user}) as response:
            assert response.status == 302
            code = query_of(response.headers["Location"])["code"]
        async with self.http.post(self.url + "/token", headers={"Authorization": basic(IDP_CLIENT, IDP_SECRET)}, data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": IDP_REDIRECT,
                "code_verifier": verifier}) as response:
            assert response.status == 200, await response.text()
            return str((await response.json())["id_token"])

    async def exchange(self, id_token: str, **params: str) -> aiohttp.ClientResponse:
        form = {"grant_type": TOKEN_EXCHANGE, "requested_token_type": ID_JAG_TOKEN_TYPE,
                "subject_token": id_token, "subject_token_type": ID_TOKEN_TYPE, **params}
        return await self.http.post(self.url + "/token", data=form,
                                    headers={"Authorization": basic(IDP_CLIENT, IDP_SECRET)})

    async def id_jag(self, audience: str, *, user: str = "alice", **params: str) -> str:
        """Leg 1 of the flow: an ID-JAG for `audience` (the facade's issuer)."""
        response = await self.exchange(await self.id_token(user), audience=audience, **params)
        body = await response.json()
        assert response.status == 200, body
        assert body["issued_token_type"] == ID_JAG_TOKEN_TYPE and body["token_type"] == "N_A"
        return str(body["access_token"])


@pytest.fixture(scope="session")
def enterprise_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return make_pki(Path(tmp_path_factory.mktemp("enterprise-pki")), ("localhost",))


async def start_idp(pki: TestPKI) -> tuple[EnterpriseIdp, web.AppRunner]:
    port = free_port()
    url = f"https://localhost:{port}"
    app = create_devidp_app(DevIdpConfig(issuer=url, client_id=IDP_CLIENT, client_secret=IDP_SECRET,
                                         redirect_uris=(IDP_REDIRECT,)))
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=pki.server_context()).start()
    trust = ssl.create_default_context(cafile=str(pki.ca_file))
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust))
    return EnterpriseIdp(url, app[CONFIG], app[STATE], http), runner


@pytest.fixture
async def enterprise_idp(enterprise_pki: TestPKI) -> AsyncIterator[EnterpriseIdp]:
    idp, runner = await start_idp(enterprise_pki)
    yield idp
    await idp.http.close()
    await runner.cleanup()


hash_secret = functools.cache(slow_hash)  # scrypt once per secret per session


def clients_toml(resources: list[str] | None = None) -> str:
    """Two pre-registered confidential clients allowed the grant (the MCP Python SDK's provider is one)."""
    limit = f"\nresources = {resources!r}".replace("'", '"') if resources else ""
    return (f'[[client]]\nid = "{AGENT}"\nname = "Agent"\nsecret_hash = "{hash_secret(AGENT_SECRET)}"\n'
            f'grant_types = ["{JWT_BEARER}"]{limit}\n\n'
            f'[[client]]\nid = "{OTHER}"\nname = "Other agent"\nsecret_hash = "{hash_secret(OTHER_SECRET)}"\n'
            f'grant_types = ["{JWT_BEARER}"]\n')


EnterpriseFacade = Callable[..., Awaitable[Facade]]


@pytest.fixture
def make_enterprise_facade(make_facade: FacadeFactory, enterprise_idp: EnterpriseIdp, enterprise_pki: TestPKI,
                           tmp_path: Path) -> EnterpriseFacade:
    """A facade trusting `enterprise_idp` (entry lines `idp_toml`, default: issuer only)."""

    async def factory(idp_toml: str = "", clients: str | None = None, **overrides: Any) -> Facade:
        idps = tmp_path / "enterprise-idps.toml"
        idps.write_text(f'[[idp]]\nissuer = "{enterprise_idp.url}"\n{idp_toml}\n')
        clients_file = tmp_path / "clients.toml"
        clients_file.write_text(clients if clients is not None else clients_toml())
        values: dict[str, Any] = {"enterprise_idps_file": str(idps), "clients_file": str(clients_file),
                                  "cimd_dev_hosts": "localhost", "cimd_ca_file": str(enterprise_pki.ca_file),
                                  "scopes": "openid offline_access mcp:read mcp:write"}
        values.update(overrides)
        return await make_facade(**values)

    return factory
