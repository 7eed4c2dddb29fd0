"""Endpoints that act at the IdP for a downstream client decide what a missing upstream registration means.

With PROXY_UPSTREAM_DCR each client has its own registration at the IdP. The upstream side
(`Upstream.client_for`) only knows that there is none (`UpstreamClientMissing`: a client registered
before DCR was switched on, or whose mirror was lost); it knows nothing of downstream client
authentication. An endpoint that acts for a client declares it with `@acts_upstream_for_client`,
and the client hears invalid_client (RFC 6749 §5.2), its cue to register again (RFC 7591 §3).
"""

from __future__ import annotations

import functools

from aiohttp import web

from proxy.errors import InvalidClient, UpstreamClientMissing
from proxy.web.routes import Handler


def acts_upstream_for_client(handler: Handler) -> Handler:
    """`handler`, with a missing upstream registration answered as invalid_client."""

    @functools.wraps(handler)
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except UpstreamClientMissing as exc:
            raise InvalidClient(exc.description, detail=exc.detail) from exc

    return handle
