"""Running the facade: one process, or N sharing the port through SO_REUSEPORT."""

from __future__ import annotations

import asyncio
import functools
import gc
import multiprocessing
import os
import queue
import signal
import sys
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from proxy import log as logging_setup
from proxy.errors import StoreUnavailable
from proxy.keys import KeyFileError, Keyset
from proxy.settings import Settings, SettingsError
from proxy.store.connect import masked, probe
from proxy.upstream.profiles import upstream_client_secret, uses_dev_idp

SHUTDOWN_TIMEOUT_S = 10.0
EXIT_UNAVAILABLE = 1  # the store or the port is not there (a configuration error is 2)


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
    if workers > 1 and uses_dev_idp(settings):
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


# Container allocations (less deallocations) between two young-generation collections. CPython's 700
# makes a request of the facade pay for a collection every ~30 requests, each 0.2-0.3 ms however few
# objects survive: 1.6 % of the CPU of a sign-in or refresh load (bench/README). At 10,000, the same
# load spends a quarter of that; each collection then takes ~2 ms, once every ~450 requests.
YOUNG_GENERATION_THRESHOLD = 10_000


async def freeze_start_up_heap(app: web.Application) -> None:
    """Once start-up has built everything (modules, settings, keys, pools), move it all to the permanent
    GC generation (`gc.freeze()`, CPython's advice for long-running servers), and collect the young
    generation less often.

    Under load requests keep promoting short-lived objects, and every few seconds that starts a full
    collection, which walked the whole start-up heap each time: 49-63 ms every ~4 s at 32 concurrent
    refreshes, over 1 % of the core. Frozen objects are never traversed (nor freed: they live as long as
    the process anyway)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])


def serving_app(settings: Settings) -> web.Application:
    """The application `oauth-facade serve` runs: the app, plus what only a serving process does."""
    from proxy.app import create_app

    app = create_app(settings)
    app.on_startup.append(freeze_start_up_heap)  # after the app's own start-up (cleanup contexts run first)
    return app


def _run(settings: Settings, reuse_port: bool) -> None:
    logging_setup.configure(settings.log_level, settings.log_format, cache=True)
    _anonymous_server_header()
    app = serving_app(settings)
    try:
        web.run_app(app, host=settings.host, port=settings.port, reuse_port=reuse_port or None, access_log=None,
                    print=functools.partial(_serving, settings), shutdown_timeout=SHUTDOWN_TIMEOUT_S,
                    handle_signals=True, loop=(_loop_factory() or asyncio.new_event_loop)())
    except (StoreUnavailable, RedisError) as exc:  # it answered the start-up PING, then went away
        cause = (exc.detail if isinstance(exc, StoreUnavailable) else None) or exc
        print(f"oauth-facade: {_store_name(settings)} did not answer: {cause}", file=sys.stderr)
        raise SystemExit(EXIT_UNAVAILABLE) from None
    except OSError as exc:
        print(f"oauth-facade: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}",
              file=sys.stderr)
        raise SystemExit(EXIT_UNAVAILABLE) from None


# -- start-up: the store first, "listening" last ---------------------------------------------------------------
_ready: Any = None  # in a --workers child: the parent's queue, told once this process serves


def _serving(settings: Settings, _banner: str) -> None:
    """aiohttp calls this once every site is bound (the store answered during start-up, before that)."""
    if _ready is not None:
        _ready.put(os.getpid())
    else:
        _listening(settings, "listening")


def _listening(settings: Settings, what: str) -> None:
    print(f"oauth-facade {what} on http://{settings.host}:{settings.port} (issuer {settings.issuer})",
          file=sys.stderr, flush=True)


def _worker(settings: Settings, ready: Any) -> None:
    """A --workers child: serves, and reports on `ready` once it does."""
    global _ready
    _ready = ready
    _run(settings, reuse_port=True)


def _store_name(settings: Settings) -> str:
    return f"the store at {masked(settings.redis_url)}" if settings.redis_url else "the in-memory store"


def store_problem(settings: Settings) -> str | None:
    """One line naming the store (password masked) and why it did not answer PING, or None."""
    if not settings.redis_url:
        return None
    cause = asyncio.run(probe(settings.redis_url, timeout_s=settings.redis_timeout_s))
    return None if cause is None else f"{_store_name(settings)} did not answer: {cause}"


def log_format(settings: Settings, stream: Any = None) -> str:
    """PROXY_LOG_FORMAT=auto (the default): readable console lines for a developer at a terminal, JSON for
    everything else (production, containers, pipes, log shippers). An explicit json/console always wins."""
    if settings.log_format != "auto":
        return settings.log_format
    stream = stream or sys.stdout
    return "console" if settings.env == "development" and stream.isatty() else "json"


def serve(settings: Settings, workers: int = 1) -> int:
    """Say "listening" only once the store answered PING and the port is bound; otherwise exit 1."""
    _preflight(settings, workers)
    problem = store_problem(settings)
    if problem is not None:
        print(f"oauth-facade: {problem}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    settings = settings.model_copy(update={"log_format": log_format(settings)})  # decided here, for every worker
    if workers == 1:
        _run(settings, reuse_port=False)
        return 0
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    processes = [context.Process(target=_worker, args=(settings, ready), daemon=False) for _ in range(workers)]
    for process in processes:
        process.start()

    stopping: list[int] = []  # the signal that asked us to stop, once; a second SIGTERM would kill a worker
    # mid-cleanup (aiohttp removes its handlers before the graceful shutdown ends)

    def stop(signum: int, frame: object) -> None:
        if stopping:
            return
        stopping.append(signum)
        for process in processes:
            if process.pid is not None and process.is_alive():
                process.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    started = 0
    while started < workers and all(process.is_alive() for process in processes):
        try:
            ready.get(timeout=0.2)
            started += 1
        except queue.Empty:
            continue
    if started == workers:
        _listening(settings, f"{workers} workers")
    else:  # a worker failed to start (its own line says why), or a signal came first: stop the others
        stop(signal.SIGTERM, None)
    for process in processes:
        process.join()
    # A worker we terminated may die of that SIGTERM before its own handler is installed (it was still
    # starting): that is the stop we asked for, not a failure. A failed worker's own code still wins.
    return max(0 if process.exitcode == -signal.SIGTERM else (process.exitcode or 0) for process in processes)


def serve_devidp(settings: Settings, *, host: str, port: int, public_url: str | None) -> int:
    """The bundled development IdP on its own port, for compose stacks and multi-process facades."""
    from proxy.devidp import DevIdpConfig, DevIdpRefused, create_devidp_app

    logging_setup.configure(settings.log_level, log_format(settings))  # aiohttp's logs redacted here too
    _anonymous_server_header()
    issuer = public_url or f"http://{host}:{port}"
    config = DevIdpConfig(issuer=issuer, client_id=settings.effective_upstream_client_id,
                          client_secret=upstream_client_secret(settings) or "dev-secret",
                          redirect_uris=(settings.url("/callback"),))
    try:
        app = create_devidp_app(config, env=settings.env)
    except DevIdpRefused as exc:
        raise SettingsError(f"PROXY_ENV: {exc}") from None
    print(f"development IdP on http://{host}:{port} (issuer {issuer})", file=sys.stderr)
    web.run_app(app, host=host, port=port, access_log=None, print=None)
    return 0
