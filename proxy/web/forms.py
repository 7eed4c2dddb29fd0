"""Reading request bodies and parameters strictly: bounded, UTF-8, each OAuth parameter at most once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote

from aiohttp import web

from proxy import strictjson
from proxy.errors import InvalidClientMetadata, InvalidRequest, PayloadTooLarge

MAX_FIELDS = 64
MAX_VALUE = 4096


async def _body(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge() from exc


def parse_params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """RFC 6749 §3.1: parameters MUST NOT be included more than once; values are bounded."""
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise InvalidRequest(f"The parameter {name!r} was sent more than once.")
        if len(value) > MAX_VALUE:
            raise InvalidRequest(f"The parameter {name!r} is too long.")
        params[name] = value
    return params


def query(request: web.Request) -> dict[str, str]:
    if len(request.query) > MAX_FIELDS:
        raise InvalidRequest("Too many parameters.")
    return parse_params(list(request.query.items()))


async def form(request: web.Request) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body (RFC 6749 §4.1.3)."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise InvalidRequest("The body must be application/x-www-form-urlencoded.")
    raw = await _body(request)
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS,
                          encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidRequest("The body is not valid UTF-8.") from exc
    except ValueError as exc:
        raise InvalidRequest("Too many parameters.") from exc
    return parse_params(pairs)


def _depth(value: Any, limit: int) -> int:
    if limit < 0:
        return 1
    if isinstance(value, Mapping):
        return 1 + max((_depth(item, limit - 1) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(item, limit - 1) for item in value), default=0)
    return 0


async def json_object(request: web.Request, max_depth: int = 4) -> dict[str, Any]:
    """A JSON object body (RFC 7591 §3.1), bounded in depth, each member name once per object;
    errors are invalid_client_metadata."""
    raw = await _body(request)
    try:
        document = strictjson.loads(raw)
    except strictjson.DuplicateMember as exc:
        shown = quote(str(exc)[:64], safe="!#$%&'()*+,-./:;=?@[]^_`{|}~", errors="backslashreplace")  # RFC 6749 §5.2
        raise InvalidClientMetadata(f"The JSON document names the member <{shown}> more than once.") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidClientMetadata("The body must be a JSON object.") from exc
    except RecursionError as exc:  # "[" * 65536 fits in the body limit; the decoder gives up, so do we
        raise InvalidClientMetadata("The JSON document is nested too deeply.") from exc
    if not isinstance(document, dict):
        raise InvalidClientMetadata("The body must be a JSON object.")
    # Depth needs as many brackets; most registrations have too few to be deep, and skip the walk.
    if raw.count(b"{") + raw.count(b"[") > max_depth and _depth(document, max_depth + 1) > max_depth:
        raise InvalidClientMetadata("The JSON document is nested too deeply.")
    return document
