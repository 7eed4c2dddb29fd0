"""The MCP server behind the gateway in `bench.gateway`: as cheap as an MCP answer can be.

POST answers a JSON-RPC result at once (the per-request overhead figure calls it directly and through
the gateway); GET opens an SSE stream that sends `ready` at once and a heartbeat event every
`--heartbeat` seconds (the held-streams figure). Cheap on purpose: the figures are about the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web

from bench.servers.common import run

HEARTBEAT_S = 5.0


async def call(request: web.Request) -> web.Response:
    message = json.loads(await request.read())
    body = {"jsonrpc": "2.0", "id": message.get("id"), "result": {"content": [{"type": "text", "text": "pong"}]}}
    return web.Response(body=json.dumps(body).encode(), content_type="application/json")


async def stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    await response.write(b"event: ready\ndata: {}\n\n")
    beat = 0
    try:
        while True:
            await asyncio.sleep(request.app["heartbeat"])
            beat += 1
            await response.write(b"event: heartbeat\ndata: %d\n\n" % beat)
    except (ConnectionError, asyncio.CancelledError):
        pass
    return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--heartbeat", type=float, default=HEARTBEAT_S)
    args = parser.parse_args()
    app = web.Application()
    app["heartbeat"] = args.heartbeat
    app.router.add_post("/mcp", call)
    app.router.add_get("/mcp", stream)
    run(app, args.port)


if __name__ == "__main__":
    main()
