"""create_app(settings): the route table with each route's policy, and the resources' lifetimes.

One Redis client and one upstream `ClientSession` per app, opened and closed by `cleanup_ctx`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from proxy import audit
from proxy.authorization import consent
from proxy.authorization.endpoint import authorize
from proxy.callback.endpoint import callback
from proxy.clients.cache import DocumentCache
from proxy.clients.cimd import CimdResolver
from proxy.clients.directory import ClientDirectory
from proxy.clients.fetch import Fetcher, Resolve, system_resolve
from proxy.clients.jwks import KeySets
from proxy.clients.registry import ClientRegistry, ClientsFileError, load_registry
from proxy.clients.resource_servers import ResourceServersFileError, load_resource_servers
from proxy.discovery.documents import base_path, build_documents
from proxy.discovery.endpoints import DOCUMENTS, JWKS_BYTES, jwks, well_known
from proxy.enterprise.discovery import locator_for
from proxy.enterprise.idps import EnterpriseIdps, configured_idps
from proxy.enterprise.runtime import Enterprise
from proxy.keys import Keyset, generate, parse_keys, render_jwks
from proxy.log import get_logger
from proxy.ops.admin import admin_grants, admin_revoke
from proxy.ops.exposition import metrics
from proxy.ops.health import healthz, readyz
from proxy.registration.endpoint import register
from proxy.resource.forward_auth import forward_auth
from proxy.resource.gateway import gateway
from proxy.resource.guard import guard_context
from proxy.resources import resource_table
from proxy.settings import DEV_IDP_MOUNT, Settings, SettingsError, gateway_pair
from proxy.state import SERVICES, SETTINGS, Services
from proxy.store import Store
from proxy.store.connect import connect, describe
from proxy.token.endpoint import token
from proxy.token.introspect import introspect
from proxy.token.revoke import revoke
from proxy.token.userinfo import userinfo
from proxy.upstream import Upstream, profile_for
from proxy.upstream.profiles import coherent, upstream_client_secret, upstream_issuer, uses_dev_idp
from proxy.web import tracing
from proxy.web.middleware import ISSUER, edge
from proxy.web.routes import Route, add_routes

log = get_logger()
REDIS: web.AppKey[Any] = web.AppKey("redis", object)


def allowed_scopes(settings: Settings) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*settings.scopes, *profile_for(settings).extra_scopes)))


def routes(settings: Settings) -> list[Route]:
    base = base_path(settings)
    paths = build_documents(settings, ["RS256"], list(allowed_scopes(settings))).by_path
    table = [Route(("GET",), path, well_known, cors=True, static=True) for path in paths]
    return [
        *table,
        Route(("GET",), base + "/jwks", jwks, cors=True, static=True),
        *([Route(("POST",), base + "/register", register, cors=True, no_store=True)] if settings.dcr else []),
        Route(("GET",), base + "/authorize", authorize, errors="redirect", no_store=True),
        Route(("POST",), base + "/consent", consent.decide, errors="redirect", no_store=True),
        Route(("GET",), base + "/callback", callback, errors="redirect", no_store=True),
        Route(("POST",), base + "/token", token, cors=True, no_store=True),
        Route(("POST",), base + "/revoke", revoke, cors=True, no_store=True),
        Route(("POST",), base + "/introspect", introspect, no_store=True),
        Route(("GET", "POST"), base + "/userinfo", userinfo, cors=True, no_store=True),
        Route(("GET",), "/healthz", healthz, static=True),
        Route(("GET",), "/readyz", readyz),
        Route(("GET",), "/metrics", metrics),
        Route(ANY_METHOD, base + "/forward-auth", forward_auth, no_store=True),  # the original method varies
        *([Route(("GET",), base + "/admin/grants", admin_grants, no_store=True),
           Route(("POST",), base + "/admin/grants/revoke", admin_revoke, no_store=True)]
          if settings.admin_token is not None else []),  # the admin API: off unless PROXY_ADMIN_TOKEN
        *gateway_routes(settings, set(paths) | {base + name for name in FACADE_PATHS}),
    ]


ANY_METHOD = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
FACADE_PATHS = ("/jwks", "/register", "/authorize", "/consent", "/callback", "/token", "/revoke", "/introspect",
                "/userinfo", "/healthz", "/readyz", "/metrics", "/forward-auth", "/admin", DEV_IDP_MOUNT)


def gateway_routes(settings: Settings, taken: set[str]) -> list[Route]:
    """The path of each gateway resource, served by the facade (PROXY_GATEWAY_BACKENDS)."""
    table = []
    for entry in settings.gateway_backends:
        path = urlsplit(gateway_pair(entry)[0]).path.rstrip("/")
        if path in taken or any(path.startswith(name + "/") for name in taken):
            raise SettingsError(f"PROXY_GATEWAY_BACKENDS: {path} is one of the facade's own paths")
        # The path with a trailing slash too: older SDKs append one to the server URL.
        table += [Route(("GET", "POST", "DELETE", "OPTIONS"), served, gateway) for served in (path, path + "/")]
    return table


async def load_keyset(settings: Settings, store: Store) -> Keyset:
    """The configured keys, or one generated key shared through the store by every replica."""
    if settings.signing_keys_file is not None:
        return Keyset.from_file(settings.signing_keys_file)
    winner = await store.shared_keyset(render_jwks([generate(settings.signing_alg)]))
    log.warning("startup.generated_key", hint="set PROXY_SIGNING_KEYS_FILE for keys that survive the store")
    return Keyset(parse_keys(winner.encode()))


def _consent_secret(keyset: Keyset) -> bytes:
    material = json.dumps(keyset.active.private_jwk(), sort_keys=True).encode()
    return hashlib.sha256(b"oauth-facade consent v1\x00" + material).digest()


def _startup_warnings(settings: Settings) -> None:
    log.info("startup", issuer=settings.issuer, store=describe(settings.redis_url),
             upstream=upstream_issuer(settings), profile=settings.upstream_profile)
    if not settings.redis_url:
        log.warning("startup.in_memory_store",
                    hint="state lives in this process only: set PROXY_REDIS_URL before running replicas")
    if uses_dev_idp(settings):
        log.warning("startup.dev_idp", hint="the bundled development IdP signs in a demo user without a password")
    if settings.issuer.startswith("http://"):
        log.warning("startup.http_issuer", hint="use an https issuer outside local development")


def client_fetcher(settings: Settings, resolve: Resolve) -> Fetcher:
    """One outbound fetcher for every URL a client or operator names: documents and key sets alike
    (`oauth-facade check` fetches pre-registered clients' key sets with it too)."""
    return Fetcher(timeout_s=settings.cimd_fetch_timeout_s, dev_hosts=settings.cimd_dev_hosts,
                   ca_file=settings.cimd_ca_file, resolve=resolve)


def client_directory(settings: Settings, store: Store, registry: ClientRegistry, resolve: Resolve) -> ClientDirectory:
    """Pre-registered clients, CIMD (unless PROXY_CIMD=off) with its shared cache, and DCR registrations."""
    fetcher = client_fetcher(settings, resolve)
    key_sets = KeySets(store.redis, settings.redis_prefix, fetcher, cache_s=settings.jwks_cache_s,
                       refetch_interval_s=settings.jwks_refetch_interval_s)
    cimd = None
    if settings.cimd:
        cimd = CimdResolver(DocumentCache(store.redis, settings.redis_prefix), fetcher,
                            allowed_hosts=settings.cimd_allowed_hosts, floor_s=settings.cimd_cache_min_s,
                            ceiling_s=settings.cimd_cache_max_s, default_s=settings.cimd_cache_default_s,
                            stale_s=settings.cimd_stale_s)
    # A URL client's key source outlives every grant it can hold: the transaction, the code, the family.
    keys_ttl = (settings.transaction_ttl_s + settings.code_ttl_s + settings.refresh_token_absolute_ttl_s
                + 86400)
    return ClientDirectory(store, registry, cimd, key_sets, client_keys_ttl_s=keys_ttl)


def enterprise(settings: Settings, store: Store, idps: EnterpriseIdps, directory: ClientDirectory,
               resolve: Resolve) -> Enterprise:
    """The trusted IdPs; their discovery documents fetched by the one SSRF-pinned fetcher's rules, their
    key sets through the clients' shared key-set cache."""
    if not idps.configured:
        return Enterprise()
    return Enterprise(idps, locator_for(settings, resolve), directory.key_sets, replay=store)


def create_app(settings: Settings, *, redis: Any = None, cimd_resolve: Resolve | None = None,
               tracer_provider: Any = None) -> web.Application:
    """The facade. `redis` injects a client (tests); otherwise PROXY_REDIS_URL decides. `cimd_resolve`
    injects the DNS answers of document hosts (tests); the fetch path is otherwise the same.
    `tracer_provider` injects an OpenTelemetry TracerProvider (tests); otherwise the OTEL_* variables decide."""
    try:
        registry = load_registry(settings.clients_file, scopes=allowed_scopes(settings),
                                 resources=settings.effective_resources)
    except ClientsFileError as exc:
        raise SettingsError(f"PROXY_CLIENTS_FILE: {exc}") from None
    can_client_credentials = any("client_credentials" in c.grant_types for c in registry.clients.values())
    try:
        resource_servers = load_resource_servers(settings)
    except ResourceServersFileError as exc:
        raise SettingsError(f"PROXY_RESOURCE_SERVERS_FILE: {exc}") from None
    idps = configured_idps(settings)
    provider = tracer_provider if tracer_provider is not None else tracing.from_environment()
    app = web.Application(middlewares=[*tracing.middlewares(provider), edge], client_max_size=settings.max_body_bytes)
    app.cleanup_ctx.append(tracing.lifetime(provider, owned=tracer_provider is None))
    if provider is not None:
        app[tracing.TRACER_PROVIDER] = provider
    app[SETTINGS] = coherent(settings)  # the profile-dependent rules: SettingsError before anything starts
    app[ISSUER] = settings.issuer

    async def resources(app: web.Application) -> AsyncIterator[None]:
        client = redis if redis is not None else connect(
            settings.redis_url, timeout_s=settings.redis_timeout_s, max_connections=settings.redis_max_connections,
            pool_timeout_s=settings.redis_pool_timeout_s)
        timeout = aiohttp.ClientTimeout(total=settings.upstream_timeout_s)
        http = aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=300),
                                     trace_configs=tracing.client_trace_configs(app, "upstream"))
        tracing.trace_redis(client, provider)
        try:
            store = Store(client, prefix=settings.redis_prefix, code_ttl_s=settings.code_ttl_s,
                          transaction_ttl_s=settings.transaction_ttl_s, client_ttl_s=settings.client_ttl_s,
                          refresh_idle_ttl_s=settings.refresh_token_idle_ttl_s,
                          refresh_absolute_ttl_s=settings.refresh_token_absolute_ttl_s,
                          refresh_grace_s=settings.refresh_grace_s,
                          unused_client_ttl_s=settings.unused_client_ttl_s)
            keyset = await load_keyset(settings, store)
            scopes = allowed_scopes(settings)
            app[REDIS] = client
            upstream = Upstream(settings, profile_for(settings), http, clients=store.load_client)
            directory = client_directory(settings, store, registry, cimd_resolve or system_resolve)
            app[SERVICES] = Services(settings, store, keyset, upstream, scopes,
                                     resource_table(settings.effective_resources), _consent_secret(keyset), directory,
                                     resource_servers=resource_servers,
                                     enterprise=enterprise(settings, store, idps, directory,
                                                           cimd_resolve or system_resolve))
            app[DOCUMENTS] = build_documents(settings, keyset.algs, list(scopes), can_client_credentials,
                                             resource_servers=resource_servers,
                                             private_key_jwt=directory.offers_private_key_jwt,
                                             enterprise_idps=idps.configured)
            app[JWKS_BYTES] = keyset.jwks_bytes
            _startup_warnings(settings)
            audit.trail.configure(settings.audit_log, tool_calls=settings.audit_tool_calls)  # PROXY_AUDIT_LOG
            yield
        finally:
            audit.trail.close()
            await http.close()
            if redis is None:
                await client.aclose()
            else:
                tracing.untrace_redis(client, provider)

    app.cleanup_ctx.append(resources)
    app.cleanup_ctx.append(guard_context(settings))  # the resource side (gateway, forward-auth)
    add_routes(app, routes(settings))
    if uses_dev_idp(settings):
        from proxy.devidp import DevIdpConfig, create_devidp_app

        config = DevIdpConfig(issuer=upstream_issuer(settings),
                              client_id=settings.effective_upstream_client_id,
                              client_secret=upstream_client_secret(settings) or "",
                              redirect_uris=(settings.url("/callback"),))
        app.add_subapp(base_path(settings) + DEV_IDP_MOUNT, create_devidp_app(config, env=settings.env))
    return app
