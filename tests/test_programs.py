"""The programs the tests start and the programs `make test` installs are one list.

A fresh machine once failed 12 tests because nginx and caddy were started by tests but installed by no
project file; the machine CI ran on had them by hand. These tests read the test sources and the Makefile,
so adding a program to a test without adding it to `TEST_PROGRAMS` (or the reverse) fails here, on any
machine, whatever is installed on it.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.programs import BASE_SYSTEM

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
SPAWNERS = {"run", "Popen", "call", "check_call", "check_output", "create_subprocess_exec"}


def _calls(tree: ast.AST) -> Iterator[ast.Call]:
    yield from (node for node in ast.walk(tree) if isinstance(node, ast.Call))


def _name(call: ast.Call) -> str:
    function = call.func
    return function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _sources() -> Iterator[tuple[Path, ast.AST]]:
    for path in sorted(TESTS.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def looked_up_programs() -> dict[str, list[str]]:
    """Every `program("NAME")` in the tests, with where it is."""
    found: dict[str, list[str]] = {}
    for path, tree in _sources():
        for call in _calls(tree):
            if _name(call) == "program" and call.args and (name := _literal(call.args[0])):
                found.setdefault(name, []).append(f"{path.relative_to(ROOT)}:{call.lineno}")
    return found


def makefile_programs() -> set[str]:
    """The program names of the Makefile's TEST_PROGRAMS (PROGRAM=PACKAGE pairs)."""
    match = re.search(r"^TEST_PROGRAMS\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile no longer defines TEST_PROGRAMS"
    return {pair.split("=", 1)[0] for pair in match[1].split()}


def test_the_makefile_installs_exactly_the_programs_the_tests_start() -> None:
    """TEST_PROGRAMS == the names the tests pass to program(): nothing started is left uninstalled, nothing
    installed is left unused."""
    started = looked_up_programs()
    installed = makefile_programs()
    assert set(started) - installed == set(), f"started by tests, installed by no make step: {started}"
    assert installed - set(started) == set(), "installed by `make test` but started by no test"


def test_tests_start_programs_only_through_program() -> None:
    """No test finds a program with shutil.which or starts one by a bare name (both would bypass the list
    above); only the base system's tools (bash, make...) are exempt."""
    bypasses = []
    for path, tree in _sources():
        if path.name == "programs.py":
            continue
        for call in _calls(tree):
            name = _name(call)
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            if name == "which" and (program := _literal(call.args[0] if call.args else None)):
                if program not in BASE_SYSTEM:
                    bypasses.append(f"{where}: shutil.which({program!r})")
            elif name in SPAWNERS and call.args:
                first = call.args[0]
                argv0 = _literal(first.elts[0]) if isinstance(first, ast.List) and first.elts else _literal(first)
                if name == "create_subprocess_exec":
                    argv0 = _literal(first)
                if argv0 is not None and argv0.split()[0] not in BASE_SYSTEM and "/" not in argv0.split()[0]:
                    bypasses.append(f"{where}: {name}({argv0!r}, ...)")
    assert bypasses == [], "use tests.programs.program(NAME) and add NAME to the Makefile's TEST_PROGRAMS"


def test_make_test_runs_the_install_step() -> None:
    """`make test` (and the interop and bench targets) depend on system-deps, which installs TEST_PROGRAMS."""
    makefile = (ROOT / "Makefile").read_text()
    for target in ("test", "interop", "bench"):
        prerequisites = re.search(rf"^{target}:([^#\n]*)", makefile, re.MULTILINE)
        assert prerequisites and "system-deps" in prerequisites[1].split(), target


def test_system_deps_installs_every_missing_program_with_apt(tmp_path: Path) -> None:
    """On a machine with none of the programs (PATH holds only a recording apt-get), `make system-deps` asks
    apt for exactly the Debian packages of TEST_PROGRAMS, and succeeds once they are there."""
    pairs = dict(pair.split("=", 1) for pair in re.search(
        r"^TEST_PROGRAMS\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)[1].split())  # type: ignore[index]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("id", "env", "chmod"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    calls = tmp_path / "apt-calls"
    stubs = " ".join(pairs)
    (bin_dir / "apt-get").write_text(
        f"#!/bin/bash\necho \"$*\" >> {calls}\n"
        f"if [ \"$1\" = install ] || [[ \" $* \" == *\" install \"* ]]; then\n"
        f"  for p in {stubs}; do printf '#!/bin/bash\\n' > {bin_dir}/$p; chmod +x {bin_dir}/$p; done\nfi\n")
    (bin_dir / "apt-get").chmod(0o755)
    result = subprocess.run([shutil.which("make") or "make", "--no-print-directory", "system-deps"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60,
                            env={"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    install = [line.split() for line in calls.read_text().splitlines() if "install" in line.split()]
    assert len(install) == 1
    assert set(install[0]) - {"install", "-y", "-qq"} == set(pairs.values())
