"""The verifier is its own distribution (verifier/, `oauth-facade-verifier`) and the facade's one copy of
token validation: the facade depends on it, its old import paths are the very same modules, and the
package imports nothing of the facade (a merge that made it would break MCP servers that install it alone)."""

from __future__ import annotations

import ast
import importlib
import sys
import tomllib
from pathlib import Path

import oauth_facade_verifier

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGE = ROOT / "verifier" / "oauth_facade_verifier"
OLD_PATHS = {"proxy.resource.core": "oauth_facade_verifier.core",
             "proxy.resource.verifier": "oauth_facade_verifier.verifier",
             "proxy.resource.asgi": "oauth_facade_verifier.asgi"}


def test_the_old_import_paths_are_the_packages_modules() -> None:
    """`proxy.resource.core`, `.verifier` and `.asgi` are the package's module objects (not copies), so an
    exception raised by one is caught under the other's name; `proxy.strictjson` re-exports its parser."""
    for old, new in OLD_PATHS.items():
        assert importlib.import_module(old) is importlib.import_module(new)
    from proxy import strictjson
    from proxy.resource.core import TokenRejected

    assert TokenRejected is oauth_facade_verifier.TokenRejected
    assert strictjson.loads is importlib.import_module("oauth_facade_verifier.strictjson").loads


def test_the_facade_depends_on_the_verifier_distribution() -> None:
    """pyproject.toml names `oauth-facade-verifier` among the facade's dependencies, and the installed
    package is the one in verifier/ (the Makefile installs it editable)."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(line.startswith("oauth-facade-verifier") for line in dependencies)
    assert Path(oauth_facade_verifier.__file__).resolve().parent == PACKAGE


def test_the_package_imports_nothing_of_the_facade_or_its_stack() -> None:
    """No module of the package imports proxy, aiohttp, redis, pydantic or structlog, at the top or inside
    a function: joserfc and the standard library only (the MCP SDK lazily, for its AccessToken)."""
    allowed_third_party = {"joserfc", "mcp"}
    found = set()
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    third_party = {name for name in found if name not in sys.stdlib_module_names and name != "oauth_facade_verifier"}
    assert "joserfc" in third_party  # the scan sees the imports (not vacuous)
    assert third_party <= allowed_third_party, third_party - allowed_third_party
