"""Fake upstream IdPs for the profile tests: aiohttp apps on loopback that reproduce each IdP's quirks
and record what the facade sent them, so a test can assert both sides of the conversation."""

from tests.upstreams.github import FakeGitHub, GitHubQuirks, create_github_app
from tests.upstreams.oidc import FakeOidc, Fault, OidcQuirks, create_oidc_app

__all__ = ["FakeGitHub", "FakeOidc", "Fault", "GitHubQuirks", "OidcQuirks", "create_github_app", "create_oidc_app"]
