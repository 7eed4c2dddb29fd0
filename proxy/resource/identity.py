"""The identity headers a protected MCP server receives from the gateway or through forward-auth.

All of them are always set (empty when unknown) and every client-sent header with the prefix is removed
first, so a client can never smuggle one in: a header the proxy did not overwrite (Caddy advisory
GHSA-7r4p-vjf4-gxv4) or that the backend reads in another spelling. Names follow oauth2-proxy's
`X-Auth-Request-*`, which many servers already read. Knows no HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from proxy.resource.core import Principal

PREFIX = "X-Auth-Request-"
USER = PREFIX + "User"  # the token's `sub`: stable, the one to key data on
EMAIL = PREFIX + "Email"
USERNAME = PREFIX + "Preferred-Username"
CLIENT_ID = PREFIX + "Client-Id"
SCOPES = PREFIX + "Scopes"  # space separated
NAMES = (USER, EMAIL, USERNAME, CLIENT_ID, SCOPES)
# Printable ASCII except '%' stays as it is; anything else (non-ASCII, controls) is percent-encoded UTF-8,
# so a value can never split a header or smuggle a second one.
_SAFE = "".join(chr(code) for code in range(0x20, 0x7F) if chr(code) != "%")


def header_value(value: object) -> str:
    return quote(value, safe=_SAFE) if isinstance(value, str) else ""


#: The sign-in claims the headers carry (each only when the token's scopes release it); email_verified
#: decides whether the email is sent at all.
CLAIMS = ("email", "email_verified", "preferred_username")


def identity_headers(principal: Principal, claims: Mapping[str, Any]) -> dict[str, str]:
    """`claims`: the caller's released identity claims (the access token carries none itself).

    The email only when the IdP said `email_verified: true`, as oauth2-proxy (whose header names these
    are) does: backends key accounts and allow-lists on it, and an unverified address is anyone's."""
    verified = claims.get("email_verified") is True
    return {
        USER: header_value(principal.sub),
        EMAIL: header_value(claims.get("email")) if verified else "",
        USERNAME: header_value(claims.get("preferred_username")),
        CLIENT_ID: header_value(principal.client_id),
        SCOPES: " ".join(principal.scopes),
    }


def is_identity_header(name: str) -> bool:
    """Also `X_Auth_Request_User`: CGI/WSGI-style backends read `_` and `-` alike (HTTP_X_AUTH_REQUEST_USER),
    so a client must not reach them with the underscore spelling either."""
    return name.lower().replace("_", "-").startswith(PREFIX.lower())
