"""Client authentication at /token and /revoke (RFC 6749 §2.3.1).

Every registered client is public, so authentication *identifies* the client: by `client_id` in the
body, or by the Basic header that Claude Code and oauth4webapi send anyway. A secret that comes along
is ignored, not checked. The Basic header is decoded as the RFC says: base64, split at the first
colon, each half `application/x-www-form-urlencoded` (`+` is a space). Clients encode it three ways in
the wild (form, percent, raw); client ids come from an alphabet all three decode alike.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_plus

from aiohttp import web

from proxy.errors import InvalidClient

MAX_HEADER = 4096


def _form_decode(value: str) -> str:
    try:
        return unquote_plus(value, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidClient("The Basic credentials are not valid UTF-8.") from exc


def parse_basic_header(header: str) -> tuple[str, str]:
    """(client_id, secret) from an `Authorization: Basic` value; malformed means invalid_client."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient("Only the Basic scheme authenticates a client here.")
    if len(header) > MAX_HEADER:
        raise InvalidClient("The Basic credentials are too long.")
    try:
        raw = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidClient("The Basic credentials are not valid base64.") from exc
    client_id, colon, secret = raw.partition(":")
    if not colon:
        raise InvalidClient("The Basic credentials have no ':' between client_id and secret.")
    if "%" in client_id + secret and not _well_formed_percent(client_id + secret):
        raise InvalidClient("The Basic credentials contain a malformed %-escape.")
    client_id, secret = _form_decode(client_id), _form_decode(secret)
    if not client_id:
        raise InvalidClient("The Basic credentials have an empty client_id.")
    return client_id, secret


def _well_formed_percent(value: str) -> bool:
    hexdigits = "0123456789abcdefABCDEF"
    index = value.find("%")
    while index != -1:
        if len(value) < index + 3 or value[index + 1] not in hexdigits or value[index + 2] not in hexdigits:
            return False
        index = value.find("%", index + 3)
    return True


def unknown_client(request: web.Request) -> InvalidClient:
    """RFC 6749 §5.2 for a client_id that is not (or no longer) registered: 401 invalid_client, with a
    Basic challenge only when the client used the Authorization header."""
    return InvalidClient("This client is not registered (or its registration expired): register again.",
                         challenge="Authorization" in request.headers)
