"""What the facade protects and how: gateway backends, per-tool scopes, the challenge of each resource.

Built once from settings; knows no HTTP. A resource is always one of the configured URLs: the gateway
finds it by its own route, forward-auth by (forwarded host, path prefix), never by building a URL from
request headers (an attacker-chosen audience would turn the facade into a token oracle).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from proxy.resource.core import OFFLINE_ACCESS
from proxy.resource.messages import call_needs
from proxy.resources import normalise
from proxy.settings import Settings, gateway_pair

TOOLS_CALL = "tools/call"


@dataclass(frozen=True, slots=True)
class ProtectedResource:
    """One configured resource: `url` is what tokens carry as `aud`; `backend` is set in gateway mode."""

    url: str
    host: str  # normalised `host[:port]`, default port dropped
    scheme: str
    path: str  # without trailing slash ('' for an origin)
    metadata_url: str  # RFC 9728 document at the facade, path-inserted (§3.1)
    backend: str | None = None

    def covers(self, path: str) -> bool:
        """The resource's path itself or anything below it (`/mcp`, `/mcp/`, `/mcp/x`; never `/mcpx`)."""
        return not self.path or path == self.path or path.startswith(self.path + "/")


@dataclass(frozen=True, slots=True)
class Policy:
    """Every protected resource, the scopes a 401 names, and the per-tool scope policy."""

    resources: tuple[ProtectedResource, ...]
    base_scopes: tuple[str, ...]  # named in a 401 challenge: what plain access needs
    tool_scopes: dict[str, tuple[str, ...]]
    gateway_by_path: dict[str, ProtectedResource]

    @property
    def gateway(self) -> tuple[ProtectedResource, ...]:
        return tuple(resource for resource in self.resources if resource.backend)


    def by_host_and_path(self, scheme: str | None, host: str, path: str) -> ProtectedResource | None:
        """The configured resource a forwarded request is for: same host, longest covering path."""
        host = _host(host, scheme)
        matches = [r for r in self.resources if r.host == host and (scheme is None or r.scheme == scheme)
                   and r.covers(path)]
        return max(matches, key=lambda r: len(r.path), default=None)

    def needed(self, calls: Iterable[tuple[str, str | None]]) -> tuple[str, ...]:
        """Scopes the given (method, name) calls need: each called tool's. Plain access needs a valid token
        for the resource and no particular scope (clients asked for nothing still get in)."""
        needed: list[str] = []
        for method, name in calls:  # exact names; other spellings of a guarded one fail closed
            needed.extend(call_needs(method, name, self.tool_scopes))
        return tuple(dict.fromkeys(needed))


def _host(host: str, scheme: str | None) -> str:
    """`Host`-header form, normalised the way `proxy.resources.normalise` does configured URLs."""
    parts = urlsplit(f"{scheme or 'https'}://{host.strip()}")
    try:
        port = parts.port
    except ValueError:
        return ""
    name = (parts.hostname or "").lower()
    if ":" in name:
        name = f"[{name}]"
    default = {"https": 443, "http": 80}.get(scheme or "", None)
    if port is None or port == default:
        return name
    if scheme is None and port in (80, 443):
        return name
    return f"{name}:{port}"


def parse_tool_scopes(entries: Iterable[str]) -> dict[str, tuple[str, ...]]:
    tools: dict[str, tuple[str, ...]] = {}
    for entry in entries:
        tool, _, scopes = entry.partition("=")
        tools[tool] = tuple(dict.fromkeys((*tools.get(tool, ()), *scopes.split("+"))))
    return tools


def build_policy(settings: Settings, allowed_scopes: Iterable[str]) -> Policy:
    backends = {normalise(resource): backend for resource, backend in map(gateway_pair, settings.gateway_backends)}
    tools = parse_tool_scopes(settings.tool_scopes)
    step_up = {scope for scopes in tools.values() for scope in scopes}
    # A 401 names what plain access needs: neither offline_access (MCP) nor the scopes only some tools need
    # (those are asked for by a 403 when the tool is called: step-up).
    base = tuple(scope for scope in allowed_scopes if scope != OFFLINE_ACCESS and scope not in step_up)
    resources = []
    for url in settings.effective_resources:
        parts = urlsplit(url)
        path = parts.path.rstrip("/")
        scheme = parts.scheme.lower()
        resources.append(ProtectedResource(
            url=url, host=_host(parts.netloc.rpartition("@")[2], scheme), scheme=scheme, path=path,
            metadata_url=settings.url(f"/.well-known/oauth-protected-resource{path}"),
            backend=backends.get(normalise(url))))
    gateway = {resource.path: resource for resource in resources if resource.backend}
    return Policy(tuple(resources), base, tools, gateway)
