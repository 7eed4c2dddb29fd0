"""GET /metrics: Prometheus text with requests, latency, flows and reuse detections."""

from __future__ import annotations

import re

from tests.conftest import Facade, FacadeFactory


async def scrape(facade: Facade, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with facade.http.get(facade.url + "/metrics", headers=headers) as response:
        return response.status, await response.text()


def value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_a_flow_and_a_reuse_show_up_in_the_counters(facade: Facade) -> None:
    """A sign-in, two refreshes and a reuse move the flow, reuse, request and upstream-duration counters by
    exactly those amounts."""
    _, before = await scrape(facade)
    client = facade.client()
    first = await client.signed_in()
    _, second = await client.refresh(first["refresh_token"])
    await client.refresh(second["refresh_token"])
    await client.refresh(first["refresh_token"])  # reuse
    status, after = await scrape(facade)
    assert status == 200
    for sample, delta in [
        ("oauth_facade_flows_started_total", 1), ("oauth_facade_flows_completed_total", 1),
        ("oauth_facade_refresh_reuse_detected_total", 1),
        ('oauth_facade_requests_total{endpoint="register",status="201"}', 1),
        ('oauth_facade_requests_total{endpoint="token",status="200"}', 3),
        ('oauth_facade_requests_total{endpoint="token",status="400"}', 1),
        ('oauth_facade_upstream_duration_seconds_count{outcome="ok",step="token_exchange"}', 1),
    ]:
        assert value(after, sample) - value(before, sample) == delta, sample
    assert 'oauth_facade_request_duration_seconds_bucket{endpoint="callback",le="+Inf"}' in after


async def test_failed_sign_ins_are_counted_by_reason(facade: Facade) -> None:
    """A refused /authorize counts one failed flow labelled with its OAuth error code."""
    client = facade.client()
    await client.register()
    _, before = await scrape(facade)
    await client.start(code_challenge_method="plain")
    _, after = await scrape(facade)
    sample = 'oauth_facade_flows_failed_total{reason="invalid_request"}'
    assert value(after, sample) - value(before, sample) == 1


async def test_metrics_can_require_a_bearer_token(make_facade: FacadeFactory) -> None:
    """PROXY_METRICS_TOKEN: /metrics is 401 without or with a wrong bearer token, 200 with the right one."""
    facade = await make_facade(metrics_token="scrape-me")
    assert (await scrape(facade))[0] == 401
    assert (await scrape(facade, "wrong"))[0] == 401
    assert (await scrape(facade, "scrape-me"))[0] == 200
