"""GET handlers for discovery and the JWKS: pre-rendered bytes, nothing computed per request."""

from __future__ import annotations

from aiohttp import web

from proxy.discovery.documents import Documents
from proxy.web.routes import CORS_HEADERS

DOCUMENTS: web.AppKey[Documents] = web.AppKey("documents", Documents)
JWKS_BYTES: web.AppKey[bytes] = web.AppKey("jwks_bytes", bytes)

# Everything these answers carry, decided once: the fast path adds nothing per request.
# Only the preflight needs the Allow-Methods/Headers/Max-Age members; a GET needs the origin grant.
HEADERS = {"Content-Type": "application/json", "Cache-Control": "public, max-age=300",
           "Access-Control-Allow-Origin": CORS_HEADERS["Access-Control-Allow-Origin"]}


async def well_known(request: web.Request) -> web.Response:
    body = request.app[DOCUMENTS].by_path.get(request.path)
    if body is None:
        raise web.HTTPNotFound()
    return web.Response(body=body, headers=HEADERS)


async def jwks(request: web.Request) -> web.Response:
    return web.Response(body=request.app[JWKS_BYTES], headers=HEADERS)
