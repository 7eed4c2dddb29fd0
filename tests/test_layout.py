"""The import graph keeps the layout's promises (`python -m tests.test_layout` prints it).

The layers, and what each may import of the product:

- the base (settings, errors, log, metrics): nothing at all, so anything may import it without a cycle;
- shared modules (everything that is not an endpoint package, the HTTP layer or a composition root:
  transaction.py, claims.py, uris.py, pkce.py, scopes.py, resources.py, keys/, store/, upstream/,
  clients/...): the base and each other, never an endpoint package, and they know no HTTP: no
  aiohttp.web, no proxy.web, no proxy.state (whose `Services` is reached through a request). This is
  where protocol pieces that several endpoints share live: the sign-in transaction (authorization and
  callback), the claims a scope releases (token and resource), redirect-URI rules and Basic parsing
  (registration, authorization, clients, token);
- the HTTP layer (web/, state.py): the route policy, the middleware, request parsing, the browser
  cookie, the typed app state; it imports the base and shared modules;
- endpoint packages (ENDPOINTS): each one answers its own routes and may import the base, shared
  modules and the HTTP layer, never another endpoint package, so each can be read alone. What only one
  package's endpoints share stays in it (token/mint.py, bearer.py, sealing.py, families.py serve
  /token, /revoke, /introspect and /userinfo and take that package's `Services`);
- composition roots (app.py, serve.py, check.py, __main__.py, settings_doc.py, grants_cli.py) and devmcp/ (the demo MCP
  server, an app of its own that uses the resource side as any MCP server would): wire things together
  and may import anything.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

PROXY = Path(__file__).resolve().parent.parent / "proxy"
# Settings, errors, logs and metrics: what every other module may import.
BASE = ("settings", "errors", "log", "metrics")
# A package that answers routes of its own (mounted by app.py; the dev IdP also runs alone).
ENDPOINTS = frozenset({"authorization", "callback", "registration", "token", "discovery", "ops", "resource",
                       "devidp"})
HTTP_LAYER = frozenset({"web", "state"})
ROOTS = frozenset({"app", "serve", "check", "__main__", "settings_doc", "grants_cli", "devmcp"})


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PROXY.parent).with_suffix("").parts).removesuffix(".__init__")


MODULES = {module_name(path): path for path in sorted(PROXY.rglob("*.py"))}


def _resolve(module: str, name: str | None = None) -> str:
    """`from proxy.x import y` names module proxy.x.y when that is a module, else proxy.x."""
    if name is not None and f"{module}.{name}" in MODULES:
        return f"{module}.{name}"
    return module


def imports(path: Path) -> set[str]:
    """The proxy modules `path` imports, at the top or inside functions (relative imports included)."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if base == "proxy" or base.startswith("proxy."):
                found.update(_resolve(base, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("proxy"))
    found.discard(module_name(path))
    return found


def imports_aiohttp_web(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module in ("aiohttp", "aiohttp.web") and (
                node.module == "aiohttp.web" or any(alias.name == "web" for alias in node.names)):
            return True
        if isinstance(node, ast.Import) and any(alias.name.startswith("aiohttp.web") for alias in node.names):
            return True
    return False


def top(module: str) -> str:
    """The first component under proxy: `token` for proxy.token.mint, `uris` for proxy.uris."""
    return module.split(".")[1] if "." in module else ""


def layer(module: str) -> str:
    first = top(module)
    if first in BASE:
        return "base"
    if first in ENDPOINTS:
        return "endpoint"
    if first in HTTP_LAYER:
        return "http"
    if first in ROOTS:
        return "root"
    return "shared"


def graph() -> dict[str, set[str]]:
    return {name: imports(path) for name, path in MODULES.items()}


def test_the_base_modules_import_nothing_of_the_product() -> None:
    """settings.py used to import upstream/profiles.py (which imports settings back); the base imports no
    proxy module at all, so anything may import it without a cycle."""
    for name in BASE:
        assert imports(PROXY / f"{name}.py") == set(), name


def test_metric_definitions_are_imported_from_the_base_not_the_ops_endpoint() -> None:
    """proxy/upstream/client.py used to import proxy/ops/metrics.py; only the ops package uses proxy.ops."""
    for path in PROXY.rglob("*.py"):
        if path.is_relative_to(PROXY / "ops") or path.name == "app.py":  # app.py mounts the ops endpoints
            continue
        reached = {name for name in imports(path) if name.startswith("proxy.ops")}
        assert not reached, f"{module_name(path)} imports {reached}"


def test_every_test_says_what_it_proves() -> None:
    """Every test function under tests/ has a docstring (the team's rule: a test's docstring says what it
    proves); 120 once had none."""
    tests = PROXY.parent / "tests"
    missing = [f"{path.relative_to(tests)}::{node.name}"
               for path in sorted(tests.rglob("test_*.py"))
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
               and not ast.get_docstring(node)]
    assert missing == []


def test_every_oauth_error_is_defined_in_the_one_hierarchy() -> None:
    """proxy/errors.py is the one hierarchy the middleware renders: no module defines an OAuthError
    subclass of its own (IdTokenRejected, DocumentNotFound and UpstreamAuthorizationError used to live
    in the upstream and callback packages). Exceptions that are not answers stay with their module (a
    malformed URI, a key file, a settings value, the resource library's TokenRejected for MCP servers,
    a CIMD fetch failure): the code that meets one raises the OAuthError that fits."""

    from proxy.errors import OAuthError

    for path in sorted(PROXY.rglob("*.py")):
        importlib.import_module(module_name(path).removesuffix(".__init__"))
    pending, outside = [OAuthError], []
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__ != "proxy.errors":
            outside.append(f"{cls.__module__}.{cls.__qualname__}")
    assert outside == []


def test_no_endpoint_package_imports_another() -> None:
    """An endpoint package is read alone: what two endpoints share lives in a shared module, not in one
    of them (callback used to import authorization, authorization registration)."""
    crossings = sorted(f"{name} -> {target}" for name, targets in graph().items() if layer(name) == "endpoint"
                       for target in targets if layer(target) == "endpoint" and top(target) != top(name))
    assert crossings == []


def test_shared_modules_know_no_http_and_no_endpoint() -> None:
    """Shared protocol modules take data, not requests: no aiohttp.web, no proxy.web or proxy.state (the
    request's `Services`), no endpoint package (token/mint.py, bearer.py and clientauth.py used to take
    `Services` or `web.Request` while other endpoints imported them)."""
    problems = [f"{name} imports aiohttp.web" for name, path in MODULES.items()
                if layer(name) == "shared" and imports_aiohttp_web(path)]
    problems += [f"{name} -> {target}" for name, targets in graph().items() if layer(name) == "shared"
                 for target in targets if layer(target) in ("endpoint", "http", "root")]
    assert sorted(problems) == []


def test_the_http_layer_imports_no_endpoint() -> None:
    """web/ and state.py serve every endpoint, so they import none (state.py used to reach into
    token/resource_servers.py for the resource servers' registry, now in clients/)."""
    crossings = sorted(f"{name} -> {target}" for name, targets in graph().items() if layer(name) == "http"
                       for target in targets if layer(target) in ("endpoint", "root"))
    assert crossings == []


def test_the_layer_rules_are_not_vacuous() -> None:
    """The checks above see the real graph: the token endpoint imports the base and the store, the HTTP
    layer is reached by endpoints, and every proxy module is classified."""
    edges = graph()
    assert "proxy.errors" in edges["proxy.token.endpoint"]
    assert any(layer(target) == "http" for target in edges["proxy.authorization.endpoint"])
    assert {layer(name) for name in MODULES} == {"base", "shared", "http", "endpoint", "root"}


def print_graph() -> None:
    """module -> the proxy modules it imports, one line each, with its layer."""
    for name, targets in graph().items():
        print(f"{name} [{layer(name)}] -> {', '.join(sorted(targets)) or '-'}")


if __name__ == "__main__":
    print_graph()
    sys.exit(0)
