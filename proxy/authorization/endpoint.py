"""GET /authorize: validate, ask consent unless this browser's approval covers the request, then go to
the upstream IdP.

OIDC Core §3.1.2.1 `prompt`: `consent` always shows the page; `none` never does, so a request that no
approval covers answers `consent_required` (SEC-72).
"""

from __future__ import annotations

import dataclasses

from aiohttp import web

from proxy.authorization import approvals, consent
from proxy.authorization.handoff import go_upstream
from proxy.authorization.request import parse
from proxy.errors import ConsentRequired
from proxy.state import services
from proxy.web import ratelimit
from proxy.web.forms import query
from proxy.web.upstream_client import acts_upstream_for_client


@acts_upstream_for_client
async def authorize(request: web.Request) -> web.StreamResponse:
    s = services(request)
    params = query(request)
    await ratelimit.admit(request, "authorize", params.get("client_id"))
    areq = await parse(request, s, params)
    if not s.settings.consent or (areq.skip_consent and "consent" not in areq.prompts):
        return await go_upstream(s, areq)  # trusted single-client deployments: no page, no browser binding
    new = approvals.novelty(request, s, approvals.cover_of(areq))
    if new and "none" in areq.prompts:
        raise ConsentRequired()
    if new or "consent" in areq.prompts:
        return await consent.ask(request, s, areq, new)
    approved_ms = approvals.covered_since(request, s, approvals.cover_of(areq))
    return await consent.upstream_from_this_browser(request, s, dataclasses.replace(areq, approved_ms=approved_ms))
