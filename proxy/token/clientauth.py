"""The token endpoints' answer to a client they do not know (RFC 6749 §5.2); parsing Basic lives in
proxy/clients/basic.py, looking clients up in proxy/clients/directory.py."""

from __future__ import annotations

from aiohttp import web

from proxy.errors import InvalidClient


def unknown_client(request: web.Request) -> InvalidClient:
    """RFC 6749 §5.2 for a client_id that is not (or no longer) registered: 401 invalid_client, with a
    Basic challenge only when the client used the Authorization header."""
    return InvalidClient("This client is not registered (or its registration expired): register again.",
                         challenge="Authorization" in request.headers)
