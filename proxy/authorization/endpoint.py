"""GET /authorize: validate, ask consent once per browser and client, then go to the upstream IdP."""

from __future__ import annotations

from aiohttp import web

from proxy.authorization import consent
from proxy.authorization.handoff import go_upstream
from proxy.authorization.request import parse
from proxy.state import services
from proxy.web.forms import query


async def authorize(request: web.Request) -> web.StreamResponse:
    s = services(request)
    params = query(request)
    areq = await parse(request, s, params)
    if s.settings.consent and not consent.approved(request, s, areq.client_id):
        return await consent.ask(request, s, areq)
    return await go_upstream(s, areq)
