"""GET /authorize: validate, ask consent once per browser and client, then go to the upstream IdP."""

from __future__ import annotations

from aiohttp import web

from proxy.authorization import consent
from proxy.authorization.handoff import go_upstream
from proxy.authorization.request import parse
from proxy.state import services
from proxy.web import ratelimit
from proxy.web.forms import query


async def authorize(request: web.Request) -> web.StreamResponse:
    s = services(request)
    params = query(request)
    await ratelimit.admit(request, "authorize", params.get("client_id"))
    areq = await parse(request, s, params)
    if not s.settings.consent:
        return await go_upstream(s, areq)  # trusted single-client deployments: no page, no browser binding
    if not consent.approved(request, s, areq.client_id):
        return await consent.ask(request, s, areq)
    return await consent.upstream_from_this_browser(request, s, areq)
