"""Check oauth-facade's access tokens inside a Python MCP server: joserfc and the standard library only.

- `FacadeTokenVerifier`: the MCP Python SDK's `TokenVerifier` (JWKS discovered from the facade's metadata,
  cached, refetched on key rotation);
- `BearerAuth`: ASGI middleware with MCP's 401/403 challenges and per-tool scopes; `principal_of` reads
  the caller it validated;
- `verify_access_token`: the RFC 9068 checks themselves, the same code the facade's gateway runs.
"""

from oauth_facade_verifier.asgi import PRINCIPAL_KEY, BearerAuth, principal_of
from oauth_facade_verifier.core import InsufficientScope, Principal, TokenRejected, UnknownKey, verify_access_token
from oauth_facade_verifier.verifier import FacadeTokenVerifier, KeysUnavailable, access_token_of

__all__ = ["PRINCIPAL_KEY", "BearerAuth", "FacadeTokenVerifier", "InsufficientScope", "KeysUnavailable", "Principal",
           "TokenRejected", "UnknownKey", "access_token_of", "principal_of", "verify_access_token"]
