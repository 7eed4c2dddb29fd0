"""GET a client metadata document without letting its host reach into the facade's network.

draft-ietf-oauth-client-id-metadata-document-03 §5 and §8.6/§8.7: https only, GET, no redirects
followed, only 200, JSON, at most 5 KB read, a short timeout. The host is resolved here, every address
is checked (`addresses.refusal`), and the connection goes to exactly those addresses through a
resolver that knows nothing else: there is no second DNS lookup between the check and the connect
(DNS rebinding). TLS still verifies the certificate for the URL's host name (SNI and Host stay the
name), so pinning the address costs nothing in authenticity.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult

from proxy.clients.addresses import refusal

MAX_BYTES = 5 * 1024  # §8.7: the recommended maximum
Resolve = Callable[[str, int], Awaitable[list[str]]]


class FetchRefused(Exception):
    """Policy said no before any byte was sent (special-use address, host not allowed)."""


class FetchFailed(Exception):
    """The fetch did not yield a document. `transient` failures (network, timeout, 5xx, 429) may be
    bridged by a cached copy for the stale window; the others (404, 3xx, not JSON, too big) may not."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class Fetched:
    body: bytes
    cache_control: str | None
    expires: str | None
    date: str | None


async def system_resolve(host: str, port: int) -> list[str]:
    """The operating system's answer, once; every address it gives is checked by the caller."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class PinnedResolver(AbstractResolver):
    """aiohttp's resolver for one fetch: the vetted addresses of one host, nothing else."""

    def __init__(self, host: str, addresses: list[str]) -> None:
        self.host = host
        self.addresses = addresses

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if host != self.host:
            raise OSError(f"only {self.host} may be resolved in this fetch")
        return [ResolveResult(hostname=host, host=address, port=port,
                              family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST)
                for address in self.addresses]

    async def close(self) -> None:
        return None


@dataclass
class Fetcher:
    """Fetches documents; `resolve` is injectable so tests can answer with any address class."""

    timeout_s: float
    dev_hosts: tuple[str, ...] = ()  # development only: host patterns that may resolve to loopback
    ca_file: Path | None = None
    resolve: Resolve = system_resolve
    max_bytes: int = MAX_BYTES
    _ssl: ssl.SSLContext = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._ssl = ssl.create_default_context()
        if self.ca_file is not None:
            self._ssl.load_verify_locations(cafile=str(self.ca_file))

    def _dev_loopback(self, host: str, address: str) -> bool:
        """The draft's development exception (§8.6): named hosts to loopback, never in production."""
        if not any(fnmatch.fnmatchcase(host, pattern) for pattern in self.dev_hosts):
            return False
        return ipaddress.ip_address(address).is_loopback

    async def vetted_addresses(self, host: str, port: int) -> list[str]:
        """The host's addresses, each one checked; FetchRefused if any is special-use."""
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await asyncio.wait_for(self.resolve(host, port), self.timeout_s)
            except (OSError, TimeoutError, UnicodeError) as exc:
                raise FetchFailed(f"the host name did not resolve: {type(exc).__name__}", transient=True) from exc
        if not addresses:
            raise FetchFailed("the host name has no address", transient=True)
        for address in addresses:
            reason = refusal(address)
            if reason is not None and not self._dev_loopback(host, address):
                raise FetchRefused(f"the host resolves to a {reason} address")
        return addresses

    def dev_http(self, url: str) -> bool:
        """Development only (PROXY_CIMD_DEV_HOSTS is refused in production): plain http to a named
        development host, such as the dev IdP of `make run` acting as an enterprise IdP."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        return parts.scheme == "http" and any(fnmatch.fnmatchcase(host, pattern) for pattern in self.dev_hosts)

    async def fetch(self, url: str) -> Fetched:
        """One GET of `url` (already a valid Client Identifier URL, or an operator's key-set URL)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host or (parts.scheme != "https" and not self.dev_http(url)):
            raise FetchRefused("only https URLs are fetched")
        addresses = await self.vetted_addresses(host, parts.port or (443 if parts.scheme == "https" else 80))
        connector = aiohttp.TCPConnector(resolver=PinnedResolver(host, addresses), ssl=self._ssl,
                                         use_dns_cache=False, force_close=True, limit=1)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                             trust_env=False) as session, \
                    session.get(yarl.URL(url, encoded=True), allow_redirects=False, headers={
                        "Accept": "application/json", "Accept-Encoding": "identity"}) as response:
                return await self._read(response)
        except (aiohttp.ClientError, OSError, TimeoutError, ssl.SSLError) as exc:
            raise FetchFailed(f"the request failed: {type(exc).__name__}", transient=True) from exc

    async def _read(self, response: aiohttp.ClientResponse) -> Fetched:
        status = response.status
        if status != 200:  # §5: only 200; a redirect is never followed
            transient = status >= 500 or status in (408, 429)
            raise FetchFailed(f"the host answered HTTP {status}", transient=transient)
        content_type = response.content_type
        if content_type != "application/json" and not (
                content_type.startswith("application/") and content_type.endswith("+json")):
            raise FetchFailed("the document is not served as JSON", transient=False)
        if response.headers.get("Content-Encoding", "identity").lower() != "identity":
            raise FetchFailed("the document is compressed", transient=False)
        if (response.content_length or 0) > self.max_bytes:
            raise FetchFailed(f"the document is larger than {self.max_bytes} bytes", transient=False)
        body = b""
        while True:  # §8.7: stop reading past the limit, whatever the headers said
            chunk = await response.content.read(self.max_bytes + 1 - len(body))
            if not chunk:
                break
            body += chunk
            if len(body) > self.max_bytes:
                raise FetchFailed(f"the document is larger than {self.max_bytes} bytes", transient=False)
        return Fetched(body, response.headers.get("Cache-Control"), response.headers.get("Expires"),
                       response.headers.get("Date"))
