"""What one virtual user does per measured operation, for each figure of the bench.

A scenario is driven by `bench.loadgen`: `setup` runs before the clock (e.g. minting the codes that
the code-exchange figure then redeems), `op` is one measured operation and raises `Unexpected` on
any answer a correct server would not give, so a fast wrong answer never counts as throughput.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from bench.httpclient import JSON, Response, Session

CLIENT_REDIRECT = "http://127.0.0.1:9/cb"  # never contacted: the flow stops at the redirect to it
REGISTRATION = json.dumps({
    "redirect_uris": [CLIENT_REDIRECT], "client_name": "bench", "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
}).encode()


class Unexpected(Exception):
    """A server answered something a correct server would not."""


class PoolEmpty(Exception):
    """A scenario ran out of pre-minted material (codes): the worker stops, it is not an error."""


def expect(response: Response, status: int, what: str) -> Response:
    if response.status != status:
        raise Unexpected(f"{what}: HTTP {response.status} (wanted {status}): {response.body[:300]!r}")
    return response


def query_of(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class VirtualUser:
    """One concurrent client: its own connections, and what it carries between operations."""

    session: Session = field(default_factory=Session)
    client_id: str | None = None
    refresh_token: str | None = None


class Scenario:
    """The interface `bench.loadgen` drives."""

    async def setup(self, users: list[VirtualUser]) -> None:
        """Prepare state before the clock starts."""

    async def op(self, user: VirtualUser) -> None:
        raise NotImplementedError

    def capacity(self) -> int | None:
        """How many more operations the scenario can run (None: unbounded)."""
        return None


class Get(Scenario):
    """GET one URL: the ceiling, discovery, JWKS."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def op(self, user: VirtualUser) -> None:
        expect(await user.session.get(self.url), 200, self.url)


class OAuthServer:
    """The facade's wire protocol, which the bare baseline speaks too, on a base URL."""

    def __init__(self, base: str, scope: str = "openid") -> None:
        self.base = base
        self.scope = scope

    async def register(self, user: VirtualUser) -> str:
        response = expect(await user.session.post(self.base + "/register", REGISTRATION, JSON), 201, "register")
        client_id: str = response.json()["client_id"]
        return client_id

    def authorize_url(self, client_id: str, challenge: str, state: str) -> str:
        return self.base + "/authorize?" + urlencode({
            "response_type": "code", "client_id": client_id, "redirect_uri": CLIENT_REDIRECT,
            "code_challenge": challenge, "code_challenge_method": "S256", "state": state, "scope": self.scope})

    async def code(self, user: VirtualUser, client_id: str, challenge: str) -> str:
        """authorize → the upstream's immediate redirect → callback → the client's redirect with a code."""
        state = secrets.token_urlsafe(16)
        upstream = expect(await user.session.get(self.authorize_url(client_id, challenge, state)), 302, "authorize")
        callback = expect(await user.session.get(upstream.location), 302, "upstream authorize")
        final = expect(await user.session.get(callback.location), 302, "callback")
        if not final.location.startswith(CLIENT_REDIRECT):
            raise Unexpected(f"callback redirected to {final.location[:200]}")
        params = query_of(final.location)
        if params.get("state") != state or "code" not in params:
            raise Unexpected(f"callback answered {final.location[:200]}")
        return params["code"]

    async def exchange(self, user: VirtualUser, client_id: str, code: str, verifier: str) -> dict[str, Any]:
        body = urlencode({"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                          "client_id": client_id, "redirect_uri": CLIENT_REDIRECT}).encode()
        tokens: dict[str, Any] = expect(await user.session.post(self.base + "/token", body), 200, "token").json()
        if "access_token" not in tokens or "refresh_token" not in tokens:
            raise Unexpected(f"token response without tokens: {sorted(tokens)}")
        return tokens

    async def refresh(self, user: VirtualUser, client_id: str, refresh_token: str) -> dict[str, Any]:
        body = urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token,
                          "client_id": client_id}).encode()
        tokens: dict[str, Any] = expect(await user.session.post(self.base + "/token", body), 200, "refresh").json()
        if "access_token" not in tokens or "refresh_token" not in tokens:
            raise Unexpected(f"refresh response without tokens: {sorted(tokens)}")
        return tokens

    async def flow(self, user: VirtualUser) -> dict[str, Any]:
        client_id = await self.register(user)
        verifier, challenge = pkce_pair()
        code = await self.code(user, client_id, challenge)
        return await self.exchange(user, client_id, code, verifier)


class Register(Scenario):
    def __init__(self, server: OAuthServer) -> None:
        self.server = server

    async def op(self, user: VirtualUser) -> None:
        await self.server.register(user)


class Flow(Scenario):
    """register → authorize → (stub upstream) → callback → token: what a new MCP client does once."""

    def __init__(self, server: OAuthServer) -> None:
        self.server = server

    async def op(self, user: VirtualUser) -> None:
        tokens = await self.server.flow(user)
        if "id_token" not in tokens:
            raise Unexpected("no id_token for scope openid")


class Exchange(Scenario):
    """POST /token authorization_code alone, over codes minted by real flows before the clock."""

    def __init__(self, server: OAuthServer, pool_size: int, mint_seconds: float) -> None:
        self.server = server
        self.pool_size = pool_size
        self.mint_seconds = mint_seconds
        self.codes: deque[tuple[str, str, str]] = deque()  # client_id, code, verifier

    async def setup(self, users: list[VirtualUser]) -> None:
        deadline = asyncio.get_running_loop().time() + self.mint_seconds

        async def mint(user: VirtualUser) -> None:
            client_id = await self.server.register(user)
            while len(self.codes) < self.pool_size and asyncio.get_running_loop().time() < deadline:
                verifier, challenge = pkce_pair()
                self.codes.append((client_id, await self.server.code(user, client_id, challenge), verifier))

        await asyncio.gather(*(mint(user) for user in users))

    def capacity(self) -> int:
        return len(self.codes)

    async def op(self, user: VirtualUser) -> None:
        if not self.codes:
            raise PoolEmpty()
        client_id, code, verifier = self.codes.popleft()
        await self.server.exchange(user, client_id, code, verifier)


class Refresh(Scenario):
    """POST /token refresh_token alone: each user rotates its own token chain."""

    def __init__(self, server: OAuthServer) -> None:
        self.server = server

    async def setup(self, users: list[VirtualUser]) -> None:
        async def start(user: VirtualUser) -> None:
            user.client_id = await self.server.register(user)
            verifier, challenge = pkce_pair()
            code = await self.server.code(user, user.client_id, challenge)
            user.refresh_token = (await self.server.exchange(user, user.client_id, code, verifier))["refresh_token"]

        await asyncio.gather(*(start(user) for user in users))

    async def op(self, user: VirtualUser) -> None:
        assert user.client_id is not None and user.refresh_token is not None
        user.refresh_token = (await self.server.refresh(user, user.client_id, user.refresh_token))["refresh_token"]


class FastMCPFlow(Scenario):
    """The same whole flow against FastMCP's OAuthProxy (its callback path is /auth/callback).

    Consent is off on both sides (PROXY_CONSENT=off, require_authorization_consent=False), so the
    redirects are the same four hops and the comparison is like for like.
    """

    def __init__(self, base: str) -> None:
        self.server = OAuthServer(base, scope="")

    async def op(self, user: VirtualUser) -> None:
        server = self.server
        client_id = await server.register(user)
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        url = server.base + "/authorize?" + urlencode({
            "response_type": "code", "client_id": client_id, "redirect_uri": CLIENT_REDIRECT,
            "code_challenge": challenge, "code_challenge_method": "S256", "state": state})
        upstream = expect(await user.session.get(url), 302, "fastmcp authorize")
        callback = expect(await user.session.get(upstream.location), 302, "upstream authorize")
        final = expect(await user.session.get(callback.location), 302, "fastmcp callback")
        params = query_of(final.location)
        if params.get("state") != state or "code" not in params:
            raise Unexpected(f"fastmcp callback answered {final.location[:200]}")
        await server.exchange(user, client_id, params["code"], verifier)


def build(spec: dict[str, Any]) -> Scenario:
    """A scenario from the orchestrator's JSON description."""
    kind = spec["kind"]
    if kind == "get":
        return Get(spec["url"])
    if kind == "fastmcp_flow":
        return FastMCPFlow(spec["base"])
    server = OAuthServer(spec["base"])
    if kind == "register":
        return Register(server)
    if kind == "flow":
        return Flow(server)
    if kind == "exchange":
        return Exchange(server, int(spec.get("pool", 3000)), float(spec.get("mint_seconds", 8.0)))
    if kind == "refresh":
        return Refresh(server)
    raise ValueError(f"unknown scenario {kind!r}")
