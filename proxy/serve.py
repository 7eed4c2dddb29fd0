"""Running the facade: one process, or N sharing the port through SO_REUSEPORT."""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import sys
from typing import Any

from aiohttp import web

from proxy import log as logging_setup
from proxy.keys import KeyFileError, Keyset
from proxy.settings import Settings, SettingsError

SHUTDOWN_TIMEOUT_S = 10.0


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _preflight(settings: Settings, workers: int) -> None:
    """Fail before listening, with one line, on what would otherwise fail mid-start-up."""
    if settings.signing_keys_file is not None:
        try:
            Keyset.from_file(settings.signing_keys_file)
        except KeyFileError as exc:
            raise SettingsError(f"PROXY_SIGNING_KEYS_FILE: {exc}") from None
    if workers < 1:
        raise SettingsError("--workers must be at least 1")
    if workers > 1 and not settings.redis_url:
        raise SettingsError("--workers > 1 needs PROXY_REDIS_URL: the in-memory store is one process only")
    if workers > 1 and settings.dev_idp:
        raise SettingsError(
            "--workers > 1 needs a real upstream: the mounted development IdP keeps state in one process "
            "(run `oauth-facade devidp` on its own and point PROXY_UPSTREAM_ISSUER at it)")


def _anonymous_server_header() -> None:
    """Answers aiohttp writes before any app code runs (a malformed or oversized request line) carry its
    default `Server: Python/x aiohttp/y`; the middleware sets `oauth-facade` on every other answer.
    aiohttp reads this module constant when it prepares a response and offers no setting for it."""
    from aiohttp import web_response

    from proxy.web.middleware import SERVER

    web_response.SERVER_SOFTWARE = SERVER  # type: ignore[misc]


def _run(settings: Settings, reuse_port: bool) -> None:
    from proxy.app import create_app

    logging_setup.configure(settings.log_level, settings.log_format, cache=True)
    _anonymous_server_header()
    app = create_app(settings)
    web.run_app(app, host=settings.host, port=settings.port, reuse_port=reuse_port or None, access_log=None,
                print=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S, handle_signals=True,
                loop=(_loop_factory() or asyncio.new_event_loop)())


def serve(settings: Settings, workers: int = 1) -> int:
    _preflight(settings, workers)
    if workers == 1:
        print(f"oauth-facade listening on http://{settings.host}:{settings.port} (issuer {settings.issuer})",
              file=sys.stderr)
        _run(settings, reuse_port=False)
        return 0
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_run, args=(settings, True), daemon=False) for _ in range(workers)]
    for process in processes:
        process.start()
    print(f"oauth-facade: {workers} workers on http://{settings.host}:{settings.port}", file=sys.stderr)

    def stop(signum: int, frame: object) -> None:
        for process in processes:
            if process.pid is not None and process.is_alive():
                process.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for process in processes:
        process.join()
    return max((process.exitcode or 0) for process in processes)


def serve_devidp(settings: Settings, *, host: str, port: int, public_url: str | None) -> int:
    """The bundled development IdP on its own port, for compose stacks and multi-process facades."""
    from proxy.devidp import DevIdpConfig, DevIdpRefused, create_devidp_app

    logging_setup.configure(settings.log_level, settings.log_format)  # aiohttp's logs redacted here too
    _anonymous_server_header()
    issuer = public_url or f"http://{host}:{port}"
    config = DevIdpConfig(issuer=issuer, client_id=settings.effective_upstream_client_id,
                          client_secret=settings.effective_upstream_client_secret or "dev-secret",
                          redirect_uris=(settings.url("/callback"),))
    try:
        app = create_devidp_app(config, env=settings.env)
    except DevIdpRefused as exc:
        raise SettingsError(f"PROXY_ENV: {exc}") from None
    print(f"development IdP on http://{host}:{port} (issuer {issuer})", file=sys.stderr)
    web.run_app(app, host=host, port=port, access_log=None, print=None)
    return 0
