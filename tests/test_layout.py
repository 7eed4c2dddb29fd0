"""The import graph keeps the layout's promises: the base imports nothing of the product, and no module
reaches into an endpoint package for what belongs to the base."""

from __future__ import annotations

import ast
from pathlib import Path

PROXY = Path(__file__).resolve().parent.parent / "proxy"
# Settings, errors, logs and metrics: what every other module may import.
BASE = ("settings", "errors", "log", "metrics")


def imports(path: Path) -> set[str]:
    """The proxy.* modules `path` imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("proxy"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("proxy"))
    return found


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PROXY.parent).with_suffix("").parts)


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
    in the upstream and callback packages)."""
    import importlib

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
