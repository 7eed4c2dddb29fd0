"""The demo MCP server of `make run`: one `whoami` tool answering with the gateway's identity headers.

Development only, like the bundled dev IdP: it trusts the identity headers of whoever reaches it, which
is right only behind the gateway (or a forward-auth proxy) on a private address.
"""

from proxy.devmcp.app import create_devmcp_app

__all__ = ["create_devmcp_app"]
