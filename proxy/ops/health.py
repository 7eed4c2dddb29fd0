"""GET /healthz (the process is up) and GET /readyz (the store answers)."""

from __future__ import annotations

from aiohttp import web

from proxy.errors import StoreUnavailable
from proxy.state import services

_UP = b'{"status":"ok"}'


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=_UP, content_type="application/json")


async def readyz(request: web.Request) -> web.Response:
    try:
        await services(request).store.ping()
    except StoreUnavailable:
        return web.Response(body=b'{"status":"store unavailable"}', status=503, content_type="application/json",
                            headers={"Retry-After": "2"})
    return web.Response(body=_UP, content_type="application/json")
