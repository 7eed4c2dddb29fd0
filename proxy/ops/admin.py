"""The admin API: list and end users' grants over HTTP, for scripts (README: Admin API).

Off unless PROXY_ADMIN_TOKEN is set (the routes do not exist: 404). Every request needs
`Authorization: Bearer <PROXY_ADMIN_TOKEN>`, compared in constant time; a wrong one is 401 and counts
against the address's wrong-credential budget (PROXY_RATE_LIMIT_AUTH_FAILURES_PER_MIN), never against
the public endpoints' rate limits, which the admin routes do not spend.

    GET  <issuer>/admin/grants[?sub=S][&client_id=C]    200 {"grants": [...]}
    POST <issuer>/admin/grants/revoke  family=F | sub=S | client_id=C  [actor=NAME]
                                                         200 {"ended": [...]} (empty when nothing was live)
"""

from __future__ import annotations

import hmac
import re

from aiohttp import web

from proxy.admin.grants import Selector, approvals_lifetime, end_grants, list_grants
from proxy.errors import InvalidRequest, InvalidToken
from proxy.state import services
from proxy.web.forms import form, query
from proxy.web.ratelimit import source_address
from proxy.web.render import NO_STORE, json_response

_ACTOR = re.compile(r"[^A-Za-z0-9._@:-]")


def _authorized(request: web.Request) -> None:
    token = services(request).settings.admin_token
    header = request.headers.get("Authorization", "")
    presented = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if token is None or not hmac.compare_digest(presented.encode(), token.get_secret_value().encode()):
        raise InvalidToken("The admin API needs the Bearer token from PROXY_ADMIN_TOKEN.")


async def admin_grants(request: web.Request) -> web.Response:
    """GET /admin/grants: the live grants, of one subject and/or client when asked."""
    _authorized(request)
    s = services(request)
    params = query(request)
    rows = await list_grants(s.store, s.clients, sub=params.get("sub") or None,
                             client_id=params.get("client_id") or None)
    return json_response({"grants": rows}, headers=NO_STORE)


async def admin_revoke(request: web.Request) -> web.Response:
    """POST /admin/grants/revoke: end one family, a subject's or a client's grants (idempotent)."""
    _authorized(request)
    s = services(request)
    params = await form(request)
    try:
        selector = Selector(family=params.get("family") or None, sub=params.get("sub") or None,
                            client_id=params.get("client_id") or None)
    except ValueError:
        raise InvalidRequest("Name exactly one of family, sub or client_id.") from None
    actor = _ACTOR.sub("?", params.get("actor", ""))[:64]
    by = f"admin-api:{source_address(request, s.settings.trusted_proxies)}" + (f":{actor}" if actor else "")
    ended = await end_grants(s.store, s.upstream, selector, by=by, approvals_lifetime_s=approvals_lifetime(s.settings))
    return json_response({"ended": ended}, headers=NO_STORE)

