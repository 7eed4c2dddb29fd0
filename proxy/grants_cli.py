"""`oauth-facade grants list|revoke`: the admin operations from a shell, against the configured store.

Runs the facade's own startup (store, keys, upstream client, client directory) without serving, so it
acts exactly as the running facade would; log lines go to stderr, the answer to stdout.
"""

from __future__ import annotations

import asyncio
import datetime
import getpass
import json
import sys
from typing import Any

from aiohttp import web

from proxy.admin.grants import Selector, approvals_lifetime, end_grants, list_grants
from proxy.settings import Settings, SettingsError

COLUMNS = ("family", "sub", "client_id", "client_kind", "client_name", "scope", "resource", "created",
           "last_used", "expires", "upstream_grant")


def _when(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def table(rows: list[dict[str, Any]]) -> str:
    """Aligned columns, times in UTC; `-` for an empty value."""
    shown = [[(_when(row[name]) if name in ("created", "last_used", "expires") else
               ("yes" if row[name] else "no") if name == "upstream_grant" else str(row[name] or "-"))
              for name in COLUMNS] for row in rows]
    header = [name.upper() for name in COLUMNS]
    widths = [max(len(line[i]) for line in [header, *shown]) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
                     for line in [header, *shown])


async def _with_services(settings: Settings, work: Any) -> Any:
    from proxy.app import create_app
    from proxy.state import SERVICES

    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()  # runs cleanup_ctx: the store, keys, upstream session, client directory
    try:
        return await work(app[SERVICES])
    finally:
        await runner.cleanup()


def run(settings: Settings, command: str, *, sub: str | None = None, client_id: str | None = None,
        family: str | None = None, as_json: bool = False) -> int:
    if not settings.redis_url:
        raise SettingsError("PROXY_REDIS_URL: unset, so the grants live only inside the running process; "
                            "use its admin API (PROXY_ADMIN_TOKEN) instead")
    from proxy.log import configure

    configure(settings.log_level, "json", stream=sys.stderr)
    if settings.audit_log == "stdout":  # stdout is the answer's: the audit lines go to stderr
        settings = settings.model_copy(update={"audit_log": "stderr"})
    if command == "list":
        rows = asyncio.run(_with_services(settings, lambda s: list_grants(s.store, s.clients, sub=sub,
                                                                         client_id=client_id)))
        print(json.dumps(rows, indent=2) if as_json else table(rows) if rows else "no live grants")
        return 0
    selector = Selector(family=family, sub=sub, client_id=client_id)
    by = f"cli:{getpass.getuser()}"
    ended = asyncio.run(_with_services(settings, lambda s: end_grants(
        s.store, s.upstream, selector, by=by, approvals_lifetime_s=approvals_lifetime(settings))))
    if as_json:
        print(json.dumps(ended, indent=2))
    elif not ended:
        print("nothing to end: no live grant matches (approvals and pending codes are ended all the same)"
              if selector.family is None else "nothing to end: no live grant matches")
    for row in [] if as_json else ended:
        upstream = ", upstream grant revoked" if row["upstream_grant"] else ""
        print(f"ended {row['family']} (sub {row['sub']}, client {row['client_id']}{upstream})")
    return 0
