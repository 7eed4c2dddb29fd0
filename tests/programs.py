"""The one way a test finds a program it starts (redis-server, nginx, caddy, node...).

A program missing here is a missing install step, not a reason to skip: `program()` fails with the make
target that installs it. `tests/test_programs.py` keeps the names passed to `program()` equal to the
Makefile's `TEST_PROGRAMS`, which `make test` installs, so a machine set up by hand can no longer hide a
program the project's own files never install.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

#: Programs every machine that runs the suite has without an install step of ours: the shell, make and
#: the base system's tools. Anything else a test starts goes through `program()`.
BASE_SYSTEM = frozenset({"bash", "make", "rm", "pgrep"})


def program(name: str) -> str:
    """The absolute path of `name` on PATH, or among the scripts of the virtualenv running the tests (where pip
    puts podman-compose); a test failure naming the install step when it is missing."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.fail(f"{name} is not installed: run `make test` (its `system-deps` step installs it), or "
                    "`make test-containers` for the container tests (`container-deps`)")
    return path
