"""The event vocabulary documented in proxy/log.py is exactly the set of events the code logs.

Operators alert and search on `event` values; a list that misses events, or names events nothing
writes, misleads them. The events are collected from the source (ast): every call
`<logger>.<level>("event", ...)` or `<logger>.log(level, "event", ...)` whose receiver is a name bound
to `get_logger(...)` (or `structlog.get_logger(...)`), so a logger need not be called `log`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import proxy.log

PROXY = Path(__file__).resolve().parent.parent / "proxy"
LEVELS = frozenset({"debug", "info", "warning", "warn", "error", "exception", "critical", "fatal", "msg"})
EVENT = re.compile(r"[a-z_]+(\.[a-z_]+)*")


def logger_names(tree: ast.AST) -> set[str]:
    """Names bound to a structlog logger anywhere in a module: `x = get_logger(...)` and `.bind(...)` of one."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            called = node.value.func
            is_logger = (isinstance(called, ast.Name) and called.id == "get_logger") or (
                isinstance(called, ast.Attribute) and called.attr in ("get_logger", "bind"))
            if is_logger:
                names.update(target.id for target in node.targets if isinstance(target, ast.Name))
    return names


def receiver_root(node: ast.expr) -> str | None:
    """The name a call chain starts from: `log` for `log.bind(a=1).info`."""
    while isinstance(node, ast.Attribute | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def logged_events() -> dict[str, set[str]]:
    """event name -> the places (module:line) that log it."""
    events: dict[str, set[str]] = {}
    for path in sorted(PROXY.rglob("*.py")):
        tree = ast.parse(path.read_text())
        loggers = logger_names(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and receiver_root(node.func.value) in loggers):
                continue
            if node.func.attr in LEVELS:
                argument = node.args[0] if node.args else None
            elif node.func.attr == "log":
                argument = node.args[1] if len(node.args) > 1 else None
            else:
                continue
            where = f"{path.relative_to(PROXY.parent)}:{node.lineno}"
            assert isinstance(argument, ast.Constant) and isinstance(argument.value, str), (
                f"{where}: the event is not a string literal, so it cannot be checked against the vocabulary")
            events.setdefault(argument.value, set()).add(where)
    return events


def documented_events() -> set[str]:
    """The first word of each indented line of the vocabulary in proxy/log.py's docstring."""
    doc = proxy.log.__doc__ or ""
    block = doc.split("Event vocabulary", 1)[1].split("\n\n", 2)[1]
    return {line.split()[0] for line in block.splitlines() if line.startswith("    ")}


def test_the_collector_sees_the_loggers_it_must() -> None:
    """The collector is not vacuous: it finds events in the middleware, the grants, the upstream client and
    the stdlib bridge (a `logger.log(level, ...)` call on a logger not named `log`)."""
    events = logged_events()
    assert {"request", "code.reused", "refresh.reuse_detected", "upstream.misconfigured", "library.log",
            "request.malformed"} <= set(events)
    assert all(EVENT.fullmatch(name) for name in events), sorted(events)


def test_every_logged_event_is_documented_and_every_documented_event_is_logged() -> None:
    """Both directions: an event the code writes is in proxy/log.py's table, and the table names no event
    that nothing writes (it once missed 11 and listed 3 that were never written)."""
    logged, documented = logged_events(), documented_events()
    undocumented = {name: sorted(logged[name]) for name in set(logged) - documented}
    assert undocumented == {}, "logged but not in proxy/log.py's vocabulary"
    assert documented - set(logged) == set(), "in proxy/log.py's vocabulary but never logged"
