"""GET handlers for discovery and the JWKS: pre-rendered bytes, nothing computed per request."""

from __future__ import annotations

from aiohttp import web

from proxy.discovery.documents import Documents

DOCUMENTS: web.AppKey[Documents] = web.AppKey("documents", Documents)
JWKS_BYTES: web.AppKey[bytes] = web.AppKey("jwks_bytes", bytes)

_CACHE = "public, max-age=300"


async def well_known(request: web.Request) -> web.Response:
    body = request.app[DOCUMENTS].by_path.get(request.path)
    if body is None:
        raise web.HTTPNotFound()
    return web.Response(body=body, content_type="application/json", headers={"Cache-Control": _CACHE})


async def jwks(request: web.Request) -> web.Response:
    return web.Response(body=request.app[JWKS_BYTES], content_type="application/json",
                        headers={"Cache-Control": _CACHE})
