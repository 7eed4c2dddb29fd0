"""The `Authorization: Basic` header a client sends, parsed (RFC 6749 §2.3.1); no HTTP here.

Every client that registered itself is public, so the header *identifies* the client (Claude Code and
oauth4webapi send it anyway); a secret that comes along is checked only for a pre-registered
confidential client (proxy/clients/directory.py). The header is decoded as the RFC says: base64, split
at the first colon, each half `application/x-www-form-urlencoded` (`+` is a space). Clients encode it
three ways in the wild (form, percent, raw); client ids come from an alphabet all three decode alike.
Malformed means invalid_client. proxy/upstream/client.py's build_basic_header writes one for the IdP.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_plus

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
    if not (_well_formed_percent(client_id) and _well_formed_percent(secret)):  # each half decodes alone
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
