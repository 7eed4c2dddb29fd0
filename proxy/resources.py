"""RFC 8707 resource indicators: configured URLs, compared after normalisation."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def normalise(url: str) -> str:
    """Lower-case scheme and host, no default port, no trailing slash (older SDKs append one)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        return ""
    if port and not ((scheme == "https" and port == 443) or (scheme == "http" and port == 80)):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path.rstrip("/"), parts.query, ""))


def resource_table(resources: tuple[str, ...]) -> dict[str, str]:
    """normalised form -> the configured URL, which is what tokens carry as `aud`."""
    return {normalise(url): url for url in resources}
