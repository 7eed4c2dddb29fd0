"""The resource side: gateway, forward-auth and the admission they share.

Token validation itself (core), the Python verifier and the ASGI middleware live in the
`oauth-facade-verifier` distribution (verifier/ in this repository), which MCP servers install without the
facade. Their old import paths keep working: `proxy.resource.core`, `proxy.resource.verifier` and
`proxy.resource.asgi` (and `messages`, the JSON-RPC reading they share) are those very modules (one module
object each, so classes and exceptions are shared).
"""

import sys

from oauth_facade_verifier import asgi, core, messages, verifier

for _name, _module in (("core", core), ("verifier", verifier), ("asgi", asgi), ("messages", messages)):
    sys.modules[f"{__name__}.{_name}"] = _module
