"""The ceiling: the least an aiohttp server can do per request, a small JSON body, on one process.

Every other figure of the bench is divided by this one, measured in the same run on the same
machine, so the ratios say what the facade costs over aiohttp itself, whatever the hardware.
"""

from __future__ import annotations

import argparse

from aiohttp import web

from bench.servers.common import run


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"message": "hello"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/", hello)
    run(app, args.port)


if __name__ == "__main__":
    main()
