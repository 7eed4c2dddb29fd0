"""Prometheus metrics: what an operator watches on a sign-in path.

Labels are bounded: the endpoint is the handler's name, never the raw path; the failure reason is an
OAuth error code this server knows (KNOWN_REASONS), anything else `other`: an error code can come from
a request (`/callback?error=<anything>`), and a label per attacker-chosen value is unbounded memory in
every scraper. The instruments live here, importable from anywhere; GET /metrics is ops/exposition.py.
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
CIMD_FETCHES = Counter("oauth_facade_cimd_documents_total",
                       "Client metadata document look-ups by outcome: ok, cached, stale, refused, failed", ["outcome"])
REFRESH_REUSE = Counter("oauth_facade_refresh_reuse_detected_total", "Refresh-token reuse detections")
# A refresh token newer than the store's copy of its family: Redis failed over and lost rotations the
# old primary had acknowledged (asynchronous replication); the family resumed instead of being lost.
REFRESH_RESUMED = Counter("oauth_facade_refresh_resumed_total",
                          "Refresh families resumed from a token the store had lost (Redis failover)")
# The upstream error policy (proxy/upstream/policy.py): alert on class="operator" (the facade's own
# configuration is refused); cause is a known OAuth error code or what happened (timeout, http_503, ...).
UPSTREAM_FAILURES = Counter("oauth_facade_upstream_failures_total", "Failed upstream calls by step, class and cause",
                            ["step", "class", "cause"])
UPSTREAM_NO_REFRESH_TOKEN = Counter("oauth_facade_upstream_missing_refresh_token_total",
                                    "Sign-ins without the upstream refresh token the profile expected")
UPSTREAM_TOKEN_EXCHANGES = Counter("oauth_facade_token_exchanges_total",
                                   "RFC 8693 token exchanges by resource server and result",
                                   ["resource_server", "result"])

# Endpoints whose failures end a sign-in.
FLOW_ENDPOINTS = frozenset({"authorize", "decide", "callback"})
# RFC 6749 §4.1.2.1 and §5.2, OIDC Core §3.1.2.6, RFC 6750 §3.1, RFC 7591 §3.2.2, RFC 8707 §2.
KNOWN_REASONS = frozenset({
    "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type", "invalid_scope",
    "server_error", "temporarily_unavailable", "invalid_client", "invalid_grant", "unsupported_grant_type",
    "interaction_required", "login_required", "account_selection_required", "consent_required",
    "invalid_request_uri", "invalid_request_object", "request_not_supported", "request_uri_not_supported",
    "registration_not_supported", "invalid_token", "insufficient_scope", "invalid_redirect_uri",
    "invalid_client_metadata", "invalid_target",
})
OTHER_REASON = "other"


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
        FLOWS_FAILED.labels(reason if reason in KNOWN_REASONS else OTHER_REASON).inc()


def cimd_outcome(outcome: str) -> None:
    """One client metadata document look-up; the label is one of five words, never the URL."""
    CIMD_FETCHES.labels(outcome).inc()
