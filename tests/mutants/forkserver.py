"""One worker of the mutant runner: imports the third-party libraries once, then forks a fresh pytest per job.

Started by tests/mutants/runner.py as a script (never as `tests.mutants...`, which would import the
working tree's `tests` package instead of the scratch copy's), with the scratch tree as its working
directory. Nothing of the product (`proxy`) nor of the suite (`tests`) is imported here: each forked child
imports them from the tree as it is at that moment, mutant included, and pays only for that. Protocol:
one JSON line per job on stdin (`{"tests": [...], "log": path, "timeout": s}`), one JSON line per answer
on stdout (`{"rc": pytest's exit code, or -1 when the job ran past its timeout}`).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import sys
import time

# Libraries the product and the suite import, minus every distribution that registers a pytest plugin
# (pytest-asyncio, pytest-aiohttp, pytest-timeout, hypothesis, anyio, platformdirs): pytest must import
# those itself, to rewrite their asserts, or it warns (and the suite turns warnings into errors).
PRELOAD = ("pytest", "aiohttp", "aiohttp.web", "aiohttp.test_utils", "joserfc.jwt", "joserfc.jwk", "joserfc.jws",
           "redis.asyncio", "fakeredis", "pydantic", "pydantic_settings", "structlog", "prometheus_client", "yarl",
           "multidict", "idna", "cryptography.hazmat.primitives.asymmetric.rsa")
PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "--no-header"]


def _child(tests: list[str], log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.setpgid(0, 0)  # its own group: a timeout kills what the tests started too
    import pytest

    try:
        code = int(pytest.main([*PYTEST_ARGS, *tests]))
    except BaseException:  # the child must always exit with a code
        import traceback

        traceback.print_exc()
        code = 3
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _wait(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -1
        time.sleep(0.05)


def main() -> None:
    sys.path[0] = os.getcwd()  # the scratch tree, not this script's directory
    # Next come the runner's PYTHONPATH entries (the scratch tree and its other source roots, verifier/),
    # ahead of site-packages, whose editable installs would import another checkout's unmutated code.
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    for line in sys.stdin:
        job = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _child(job["tests"], job["log"])
        rc = _wait(pid, float(job["timeout"]))
        sys.stdout.write(json.dumps({"rc": rc}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
