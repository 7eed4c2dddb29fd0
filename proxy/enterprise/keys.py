"""TEMPORARY until pkjwt's proxy/clients/jwks.py is merged: parse a fetched key set."""

from __future__ import annotations

import json
from typing import Any

from joserfc import jwk
from joserfc.errors import JoseError


class KeySetUnusable(Exception):
    """The key set is not a JWKS of public signing keys."""


def public_key_set(body: bytes) -> list[Any]:
    try:
        document = json.loads(body)
        keys = document["keys"]
        parsed = jwk.KeySet.import_key_set(document)
    except (ValueError, KeyError, TypeError, JoseError) as exc:
        raise KeySetUnusable("not a JWKS") from exc
    if not keys:
        raise KeySetUnusable("it has no keys")
    if any(key.is_private for key in parsed.keys):
        raise KeySetUnusable("it holds private key material")
    return list(parsed.keys)
