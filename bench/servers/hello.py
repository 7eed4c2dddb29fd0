"""The ceiling: the least an aiohttp server can do per request, a small JSON body, on one process.

Every other figure of the bench is divided by this one, measured in the same run on the same
machine, so the ratios say what the facade costs over aiohttp itself, whatever the hardware.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

from aiohttp import web

from bench.servers.common import run

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"message": "hello"})


@web.middleware
async def pass_through(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Does nothing: what aiohttp's middleware machinery alone costs (with `--middleware`)."""
    return await handler(request)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--middleware", action="store_true",
                        help="one pass-through middleware: the floor of any app that has one, the facade included")
    args = parser.parse_args()
    app = web.Application(middlewares=[pass_through] if args.middleware else [])
    app.router.add_get("/", hello)
    run(app, args.port)


if __name__ == "__main__":
    main()
