"""Prometheus metrics: what an operator watches on a sign-in path.

Labels are bounded: the endpoint is the handler's name, never the raw path; the failure reason is an
OAuth error code. The instruments live here, importable from anywhere; GET /metrics is ops/exposition.py.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("oauth_facade_requests_total", "HTTP requests by endpoint and status", ["endpoint", "status"])
LATENCY = Histogram("oauth_facade_request_duration_seconds", "Request latency by endpoint", ["endpoint"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
UPSTREAM = Histogram("oauth_facade_upstream_duration_seconds", "Upstream IdP call latency by step and outcome",
                     ["step", "outcome"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
FLOWS_STARTED = Counter("oauth_facade_flows_started_total", "Sign-ins sent to the upstream IdP")
FLOWS_COMPLETED = Counter("oauth_facade_flows_completed_total", "Sign-ins that ended in a token response")
FLOWS_FAILED = Counter("oauth_facade_flows_failed_total", "Sign-ins that failed, by OAuth error code", ["reason"])
REFRESH_REUSE = Counter("oauth_facade_refresh_reuse_detected_total", "Refresh-token reuse detections")

# Endpoints whose failures end a sign-in.
FLOW_ENDPOINTS = frozenset({"authorize", "decide", "callback"})


_requests: dict[tuple[str, int], Counter] = {}
_latency: dict[str, Histogram] = {}


def count(endpoint: str, status: int) -> None:
    """One request; label children are cached, it is on the discovery fast path."""
    child = _requests.get((endpoint, status))
    if child is None:
        child = _requests[(endpoint, status)] = REQUESTS.labels(endpoint, str(status))
    child.inc()


def observe(endpoint: str, status: int, seconds: float) -> None:
    count(endpoint, status)
    child = _latency.get(endpoint)
    if child is None:
        child = _latency[endpoint] = LATENCY.labels(endpoint)
    child.observe(seconds)


def flow_failed(endpoint: str, reason: str) -> None:
    if endpoint in FLOW_ENDPOINTS:
        FLOWS_FAILED.labels(reason).inc()
