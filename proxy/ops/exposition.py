"""GET /metrics. With `--workers N`, set PROMETHEUS_MULTIPROC_DIR so one scrape sees every process."""

from __future__ import annotations

import hmac
import os

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from proxy.errors import InvalidToken
from proxy.state import SETTINGS


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics in the Prometheus text format; Bearer-protected when PROXY_METRICS_TOKEN is set."""
    token = request.app[SETTINGS].metrics_token
    if token is not None:
        header = request.headers.get("Authorization", "")
        presented = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not hmac.compare_digest(presented.encode(), token.get_secret_value().encode()):
            raise InvalidToken("GET /metrics needs the Bearer token from PROXY_METRICS_TOKEN.")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
