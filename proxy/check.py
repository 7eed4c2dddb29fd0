"""`oauth-facade check`: load the settings, talk to the upstream, print what clients will see.

Exit code 0 when nothing is wrong, 1 when a problem was found (each printed as a line).
"""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp

from proxy.discovery.documents import authorization_server_metadata
from proxy.errors import UpstreamError
from proxy.keys import KeyFileError, Keyset
from proxy.settings import Settings
from proxy.upstream import Upstream, profile_for


async def _upstream_problems(settings: Settings) -> list[str]:
    problems: list[str] = []
    profile = profile_for(settings)
    timeout = aiohttp.ClientTimeout(total=settings.upstream_timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        upstream = Upstream(settings, profile, http)
        try:
            metadata = await upstream.metadata()
        except UpstreamError as exc:
            return [f"upstream unreachable or unusable at {upstream.issuer}: {exc.detail}"]
        print(f"upstream: {upstream.issuer} (profile {profile.name})")
        if profile.oidc:
            try:
                await upstream.id_tokens._keyset()
            except UpstreamError as exc:
                problems.append(f"upstream JWKS: {exc.detail}")
        methods = metadata.get("code_challenge_methods_supported")
        if profile.endpoints is None and methods is not None and "S256" not in methods:
            problems.append("the upstream does not list PKCE S256 in code_challenge_methods_supported")
        grants = metadata.get("grant_types_supported")
        if profile.refresh != "none" and grants is not None and "refresh_token" not in grants:
            problems.append("the upstream does not list the refresh_token grant: sessions end at token expiry")
        if not settings.effective_upstream_client_secret:
            problems.append("PROXY_UPSTREAM_CLIENT_SECRET is not set")
    print(f"register this redirect URI at the upstream: {settings.url('/callback')}")
    return problems


def run_check(settings: Settings) -> int:
    problems: list[str] = []
    algs = ["RS256"]
    if settings.signing_keys_file is not None:
        try:
            algs = Keyset.from_file(settings.signing_keys_file).algs
        except KeyFileError as exc:
            problems.append(f"PROXY_SIGNING_KEYS_FILE: {exc}")
    else:
        print("signing keys: generated at start-up (set PROXY_SIGNING_KEYS_FILE for production)")
    if not settings.issuer.startswith("https://"):
        print("note: the issuer is http://; MCP clients require https outside localhost")
    if settings.dev_idp:
        print("upstream: the bundled development IdP (mounted at /devidp when serving)")
    else:
        problems += asyncio.run(_upstream_problems(settings))
    scopes = list(dict.fromkeys((*settings.scopes, *profile_for(settings).extra_scopes)))
    print(json.dumps(authorization_server_metadata(settings, algs, scopes), indent=2))
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0
