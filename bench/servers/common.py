"""Running an aiohttp app the way the facade runs (uvloop when installed, no access log)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop when installed, as `proxy.serve` does, so every server in a run has the same loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


async def healthz(request: web.Request) -> web.Response:
    """What the orchestrator polls before it starts measuring."""
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


def run(app: web.Application, port: int) -> None:
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=loop_factory()(),
                shutdown_timeout=1.0)
