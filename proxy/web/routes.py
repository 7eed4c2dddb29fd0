"""Each route's policy in one place, so a reviewer audits errors, CORS and caching on one screen."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web
from multidict import istr

from proxy.web.render import NO_STORE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SERVER = "oauth-facade"  # RFC 9110 §10.2.4: the product, no version to match exploits against
ErrorMode = Literal["json", "html", "redirect"]


@dataclass(frozen=True, slots=True)
class Route:
    """`errors`: how an OAuthError is answered. `redirect` means: to the client's redirect_uri once the
    handler has trusted it (RFC 6749 §4.1.2.1), as an HTML page before. `static`: pre-rendered bytes,
    logged at debug level only."""

    methods: tuple[str, ...]
    path: str
    handler: Handler
    errors: ErrorMode = "json"
    cors: bool = False
    no_store: bool = False
    static: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    endpoint: str  # the handler's name: the metrics label
    errors: ErrorMode
    cors: bool
    no_store: bool
    static: bool
    headers: dict[str, str] = field(default_factory=dict)  # what the policy adds to every answer

    def __post_init__(self) -> None:
        # Case-insensitive names built once: updating a response's headers then skips converting each name.
        self.headers.update({istr(name): value for name, value in {
            **(CORS_RESPONSE_HEADERS if self.cors else {}), **(NO_STORE if self.no_store else {}),
            "Server": SERVER}.items()})


POLICY: web.AppKey[dict[str, Policy]] = web.AppKey("route_policy", dict)
REDIRECT_TARGET: web.RequestKey[tuple[str, str | None]] = web.RequestKey("redirect_target", tuple)

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "authorization, content-type, mcp-protocol-version, dpop",
    "Access-Control-Expose-Headers": "WWW-Authenticate",
    "Access-Control-Max-Age": "86400",
}
# What a browser reads on the actual (non-preflight) answer (Fetch, "CORS check"): the rest is read
# only on the preflight's 204, and repeating it on every answer costs bytes on each.
CORS_RESPONSE_HEADERS = {name: CORS_HEADERS[name]
                         for name in ("Access-Control-Allow-Origin", "Access-Control-Expose-Headers")}


async def preflight(request: web.Request) -> web.Response:
    """CORS preflight for browser-based MCP clients."""
    return web.Response(status=204, headers=CORS_HEADERS)


def add_routes(app: web.Application, routes: list[Route]) -> None:
    policies: dict[str, Policy] = {}
    for index, route in enumerate(routes):
        policy = Policy(route.handler.__name__, route.errors, route.cors, route.no_store, route.static)
        for method in route.methods:
            name = f"r{index}_{method.lower()}"
            app.router.add_route(method, route.path, route.handler, name=name)
            policies[name] = policy
        if route.cors:
            name = f"r{index}_options"
            app.router.add_route("OPTIONS", route.path, preflight, name=name)
            policies[name] = Policy("preflight", route.errors, route.cors, route.no_store, static=True)
    app[POLICY] = policies
