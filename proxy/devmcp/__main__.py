"""`python -m proxy.devmcp [--host H] [--port P] [--path /mcp]`: the demo MCP server on its own port."""

from __future__ import annotations

import argparse
import os
import sys

from aiohttp import web

from proxy.devmcp.app import DevMcpRefused, create_devmcp_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proxy.devmcp", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--path", default="/mcp")
    args = parser.parse_args(argv)
    try:
        app = create_devmcp_app(args.path, env=os.environ.get("PROXY_ENV", "development"))
    except DevMcpRefused as exc:
        print(f"PROXY_ENV: {exc}", file=sys.stderr)
        return 2
    print(f"demo MCP server on http://{args.host}:{args.port}{args.path} (development only)", file=sys.stderr)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
