"""Fixtures of the interoperability suite: the process stack (stack.py), once per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.interop.stack import InteropStack, running_stack


@pytest.fixture(scope="session")
def interop() -> Iterator[InteropStack]:
    """redis-server, oidc-provider, `oauth-facade serve` and the protected MCP server, on free ports."""
    with running_stack() as stack:
        yield stack
